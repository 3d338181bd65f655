//! Test-only: a component that exports the contract's `plugin` interface
//! but no hook, so it could never act; the host must refuse it at load.

wit_bindgen::generate!({
    inline: r#"
        package test:no-hooks;

        /// Exports `plugin` and nothing else.
        world no-hooks {
            export specgate:policy/plugin@0.1.0;
        }
    "#,
    path: "../../../wit",
});

struct NoHooks;

impl exports::specgate::policy::plugin::Guest for NoHooks {
    fn describe() -> exports::specgate::policy::plugin::Info {
        exports::specgate::policy::plugin::Info {
            name: "no-hooks".into(),
            version: "0.1.0".into(),
            description: "exports no hook".into(),
        }
    }

    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }
}

export!(NoHooks);
