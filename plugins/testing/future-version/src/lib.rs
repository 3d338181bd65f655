//! Test-only: a plugin built against an incompatible future version of the
//! contract (`specgate:policy@0.2.0`), which the host must refuse at load.

wit_bindgen::generate!({
    inline: r#"
        package specgate:policy@0.2.0;

        /// The plugin interface of a later, incompatible contract.
        interface plugin {
            /// Who the plugin is.
            record info { name: string, version: string, description: string }
            /// Describe the plugin.
            describe: func() -> info;
            /// Receive settings.
            configure: func(settings: list<tuple<string, string>>) -> result<_, string>;
        }

        /// A plugin of the later contract.
        world later {
            export plugin;
        }
    "#,
});

struct Future;

impl exports::specgate::policy::plugin::Guest for Future {
    fn describe() -> exports::specgate::policy::plugin::Info {
        exports::specgate::policy::plugin::Info {
            name: "future-version".into(),
            version: "0.2.0".into(),
            description: "built against specgate:policy@0.2.0".into(),
        }
    }

    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }
}

export!(Future);
