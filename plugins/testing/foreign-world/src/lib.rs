//! Test-only: a valid component of a world that is not specgate's, which
//! the host must refuse at load, saying what it exports.

wit_bindgen::generate!({
    inline: r#"
        package example:greeter;

        /// Greets.
        world greeter {
            /// Returns a greeting.
            export greet: func(name: string) -> string;
        }
    "#,
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);
