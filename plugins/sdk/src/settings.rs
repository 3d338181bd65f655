//! Typed access to the settings an operator gives a plugin.

use std::collections::BTreeMap;

/// The settings passed to `configure`. Read each key a plugin understands,
/// then call [`Settings::finish`], which refuses keys nobody read, so a
/// misspelt setting is an error rather than silently ignored.
#[derive(Debug)]
pub struct Settings {
    values: BTreeMap<String, String>,
    errors: Vec<String>,
}

impl Settings {
    /// Wraps the list `configure` received. A key given twice is an error.
    pub fn new(settings: Vec<(String, String)>) -> Self {
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        for (key, value) in settings {
            if values.insert(key.clone(), value).is_some() {
                errors.push(format!("setting `{key}` given twice"));
            }
        }
        Settings { values, errors }
    }

    /// A string setting.
    pub fn string(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    /// A comma-separated list; blank items are skipped.
    pub fn list(&mut self, key: &str) -> Option<Vec<String>> {
        self.string(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
    }

    /// A boolean: `true`/`false`, `yes`/`no`, `1`/`0`.
    pub fn bool(&mut self, key: &str) -> Option<bool> {
        let value = self.string(key)?;
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => {
                self.errors
                    .push(format!("setting `{key}`: `{value}` is not a boolean"));
                None
            }
        }
    }

    /// A list whose every item is parsed by `parse`; an item that does not
    /// parse is recorded as an error naming the key and the item.
    pub fn parsed_list<T>(
        &mut self,
        key: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.list(key)?;
        let mut parsed = Vec::with_capacity(items.len());
        for item in items {
            match parse(&item) {
                Some(value) => parsed.push(value),
                None => self
                    .errors
                    .push(format!("setting `{key}`: `{item}` is not {what}")),
            }
        }
        Some(parsed)
    }

    /// Records an error about a setting.
    pub fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }

    /// Ends reading: errors if a value was bad or a key was not read.
    pub fn finish(self) -> Result<(), String> {
        let mut errors = self.errors;
        errors.extend(
            self.values
                .keys()
                .map(|key| format!("unknown setting `{key}`")),
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
