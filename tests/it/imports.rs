//! No import cycles between the files of host/src: a file that uses an
//! item defined in another must not be used, directly or through other
//! files, by it. A cycle means neither file can be read, tested or moved
//! without the other.
//!
//! The graph: an edge from file A to file B when A names, in a `use` or
//! in a path in its code (`crate::`, `super::`, `self::`, a child module,
//! or a module A imported), an item B *defines*. Paths are resolved to
//! the file that defines the item: through modules (one file each) and
//! through re-exports, so a parent `mod.rs` that only declares a child
//! and re-exports its items (`pub use child::Item;`) is no edge, and
//! neither is a `pub use` itself. A child that uses an item its parent
//! defines, while the parent uses an item the child defines, is a cycle.
//! A file's own inline modules (`mod tests`) belong to the file.
//! main.rs, a crate root of its own that uses the library by name, is
//! not part of the graph.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// The tokens of Rust source, each with its line; comments, literals
/// and lifetimes are dropped.
fn lex(source: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 1);
    let skip_string = |i: &mut usize, line: &mut usize| {
        // At the opening quote.
        *i += 1;
        while *i < chars.len() && chars[*i] != '"' {
            if chars[*i] == '\\' {
                *i += 1;
            }
            if chars.get(*i) == Some(&'\n') {
                *line += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            skip_string(&mut i, &mut line);
        } else if c == '\'' {
            if next == Some('\\') {
                // An escaped character: up to the closing quote.
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                // A lifetime or a label.
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = chars.get(i).copied();
            match (word.as_str(), after) {
                ("r" | "br" | "cr", Some('#' | '"')) => {
                    let mut hashes = 0;
                    while chars.get(i) == Some(&'#') {
                        hashes += 1;
                        i += 1;
                    }
                    if chars.get(i) != Some(&'"') {
                        // A raw identifier, r#name.
                        continue;
                    }
                    i += 1;
                    loop {
                        if i >= chars.len() {
                            break;
                        }
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                            i += 1 + hashes;
                            break;
                        }
                        i += 1;
                    }
                }
                ("b" | "c", Some('"')) => skip_string(&mut i, &mut line),
                ("b", Some('\'')) => {
                    i += 1;
                    if chars.get(i) == Some(&'\\') {
                        i += 1;
                    }
                    i += 1;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                }
                _ => tokens.push((Token::Ident(word), line)),
            }
        } else if c == ':' && next == Some(':') {
            tokens.push((Token::Path, line));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

/// One name a `use` brings in.
#[derive(Debug)]
struct Import {
    /// The inline modules of the file the `use` is in, outermost first.
    scope: Vec<String>,
    segments: Vec<String>,
    /// The name it is known by; none for a glob.
    alias: Option<String>,
    public: bool,
    line: usize,
}

/// A path in code, outside `use`: two segments or more.
#[derive(Debug)]
struct Reference {
    scope: Vec<String>,
    segments: Vec<String>,
    line: usize,
}

#[derive(Debug, Default)]
struct File {
    /// Module path of the file, from the crate root.
    module: Vec<String>,
    imports: Vec<Import>,
    references: Vec<Reference>,
    /// Items defined at module level: (inline scope, name).
    defined: BTreeSet<(Vec<String>, String)>,
    /// Inline modules, by their path within the file.
    inline: BTreeSet<Vec<String>>,
}

const ITEM_KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "const", "static", "trait", "type", "union", "mod",
];

fn parse_use_tree(
    tokens: &[(Token, usize)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let mut segments = prefix;
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Path => i += 1,
            Token::Punct('*') => {
                out.push((segments, None));
                return i + 1;
            }
            Token::Punct('{') => {
                i += 1;
                while i < tokens.len() {
                    match tokens[i].0 {
                        Token::Punct('}') => return i + 1,
                        Token::Punct(',') => i += 1,
                        _ => i = parse_use_tree(tokens, i, segments.clone(), out),
                    }
                }
                return i;
            }
            Token::Ident(name) => {
                segments.push(name.clone());
                i += 1;
                if tokens.get(i).map(|t| &t.0) == Some(&Token::Path) {
                    continue;
                }
                if segments.last().is_some_and(|s| s == "self") {
                    segments.pop();
                }
                let mut alias = segments.last().cloned();
                if tokens.get(i).map(|t| &t.0) == Some(&Token::Ident("as".into())) {
                    alias = match tokens.get(i + 1).map(|t| &t.0) {
                        Some(Token::Ident(a)) if a != "_" => Some(a.clone()),
                        _ => Some(String::new()),
                    };
                    i += 2;
                }
                out.push((segments, alias));
                return i;
            }
            _ => return i,
        }
    }
    i
}

/// Reads one file's imports, references, items and inline modules.
fn parse(module: Vec<String>, source: &str) -> File {
    let tokens = lex(source);
    let mut file = File {
        module,
        ..File::default()
    };
    let ident = |i: usize| match tokens.get(i).map(|t| &t.0) {
        Some(Token::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let punct = |i: usize, c: char| tokens.get(i).map(|t| &t.0) == Some(&Token::Punct(c));
    // Inline modules open around here: (name, brace depth inside it).
    let mut scopes: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let scope: Vec<String> = scopes.iter().map(|(n, _)| n.clone()).collect();
        let at_module_level = depth == scopes.last().map_or(0, |(_, d)| *d);
        match &tokens[i].0 {
            Token::Punct('#') => {
                // An attribute: skipped whole.
                let mut j = i + 1;
                if punct(j, '!') {
                    j += 1;
                }
                if punct(j, '[') {
                    let mut level = 0;
                    while j < tokens.len() {
                        match tokens[j].0 {
                            Token::Punct('[') => level += 1,
                            Token::Punct(']') => {
                                level -= 1;
                                if level == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                }
                i = j + 1;
            }
            Token::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Token::Punct('}') => {
                if scopes.last().is_some_and(|(_, d)| *d == depth) {
                    scopes.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Token::Ident(word) if word == "use" => {
                let line = tokens[i].1;
                let mut back = i;
                let mut public = false;
                // `pub use`, `pub(crate) use`, `pub(in path) use`.
                while back > 0 {
                    back -= 1;
                    match &tokens[back].0 {
                        Token::Ident(w) if w == "pub" => {
                            public = true;
                            break;
                        }
                        Token::Punct(')') | Token::Punct('(') | Token::Path => {}
                        Token::Ident(w) if w == "crate" || w == "super" || w == "in" => {}
                        _ => break,
                    }
                }
                let mut names = Vec::new();
                i = parse_use_tree(&tokens, i + 1, Vec::new(), &mut names);
                for (segments, alias) in names {
                    file.imports.push(Import {
                        scope: scope.clone(),
                        segments,
                        alias,
                        public,
                        line,
                    });
                }
            }
            Token::Ident(word) if ITEM_KEYWORDS.contains(&word.as_str()) => {
                if let Some(name) = ident(i + 1)
                    && !ITEM_KEYWORDS.contains(&name)
                    && name != "unsafe"
                    && at_module_level
                {
                    file.defined.insert((scope.clone(), name.to_string()));
                    if word == "mod" && punct(i + 2, '{') {
                        let mut inner = scope.clone();
                        inner.push(name.to_string());
                        file.inline.insert(inner);
                        scopes.push((name.to_string(), depth + 1));
                        depth += 1;
                        i += 3;
                        continue;
                    }
                }
                i += 1;
            }
            Token::Ident(word) if word == "macro_rules" && punct(i + 1, '!') => {
                if let Some(name) = ident(i + 2) {
                    file.defined.insert((scope.clone(), name.to_string()));
                }
                i += 3;
            }
            Token::Ident(first) => {
                let after_path_or_dot =
                    i > 0 && matches!(tokens[i - 1].0, Token::Path | Token::Punct('.'));
                let line = tokens[i].1;
                let mut segments = vec![first.clone()];
                let mut j = i + 1;
                while tokens.get(j).map(|t| &t.0) == Some(&Token::Path) {
                    match ident(j + 1) {
                        Some(next) => {
                            segments.push(next.to_string());
                            j += 2;
                        }
                        None => break,
                    }
                }
                if !after_path_or_dot && segments.len() >= 2 {
                    file.references.push(Reference {
                        scope: scope.clone(),
                        segments,
                        line,
                    });
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    file
}

/// The module path of a source file under src, or none for main.rs.
fn module_of(relative: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    match last.as_str() {
        "lib.rs" if parts.is_empty() => {}
        "main.rs" if parts.is_empty() => return None,
        "mod.rs" => {}
        other => parts.push(other.strip_suffix(".rs")?.to_string()),
    }
    Some(parts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

struct Graph {
    names: Vec<String>,
    files: Vec<File>,
    by_module: HashMap<Vec<String>, usize>,
}

/// Where a path resolves: the file defining its item, or none (a module,
/// or outside the crate).
type Resolved = Option<usize>;

impl Graph {
    /// Whether `module` is a module: a file, or an inline module of one.
    fn module_file(&self, module: &[String]) -> Option<(usize, Vec<String>)> {
        for cut in (0..=module.len()).rev() {
            if let Some(&file) = self.by_module.get(&module[..cut]) {
                let inline = module[cut..].to_vec();
                return (inline.is_empty() || self.files[file].inline.contains(&inline))
                    .then_some((file, inline));
            }
        }
        None
    }

    /// Resolves `segments`, written in module `context` (a file's module
    /// and its inline scope), to the file that defines its item.
    fn resolve(&self, context: &[String], segments: &[String], hops: usize) -> Resolved {
        if hops > 16 || segments.is_empty() {
            return None;
        }
        let (mut base, rest): (Vec<String>, &[String]) = match segments[0].as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "self" => (context.to_vec(), &segments[1..]),
            "super" => {
                let mut base = context.to_vec();
                let mut k = 0;
                while segments.get(k).is_some_and(|s| s == "super") {
                    base.pop()?;
                    k += 1;
                }
                (base, &segments[k..])
            }
            first => {
                let mut child = context.to_vec();
                child.push(first.to_string());
                if self.module_file(&child).is_some() {
                    (context.to_vec(), segments)
                } else {
                    // A name imported into `context`.
                    let import = self.import_in(context, first)?;
                    let (file, _) = self.module_file(context)?;
                    let owner = &self.files[file];
                    let mut target = import.segments.clone();
                    target.extend_from_slice(&segments[1..]);
                    let mut at = owner.module.clone();
                    at.extend(import.scope.iter().cloned());
                    return self.resolve(&at, &target, hops + 1);
                }
            }
        };
        for segment in rest {
            let mut child = base.clone();
            child.push(segment.clone());
            if self.module_file(&child).is_some() {
                base = child;
                continue;
            }
            return self.item(&base, segment, hops);
        }
        None
    }

    /// The import of `name` visible in module `context`, innermost scope
    /// first.
    fn import_in(&self, context: &[String], name: &str) -> Option<&Import> {
        let (file, inline) = self.module_file(context)?;
        let file = &self.files[file];
        file.imports
            .iter()
            .filter(|i| i.alias.as_deref() == Some(name) && inline.starts_with(&i.scope))
            .max_by_key(|i| i.scope.len())
    }

    /// The file defining item `name` of module `module`, following
    /// re-exports.
    fn item(&self, module: &[String], name: &str, hops: usize) -> Resolved {
        let (index, inline) = self.module_file(module)?;
        let file = &self.files[index];
        if file.defined.contains(&(inline.clone(), name.to_string())) {
            return Some(index);
        }
        if let Some(import) = file
            .imports
            .iter()
            .find(|i| i.scope == inline && i.alias.as_deref() == Some(name))
        {
            let mut at = file.module.clone();
            at.extend(import.scope.iter().cloned());
            return self.resolve(&at, &import.segments, hops + 1);
        }
        for glob in file
            .imports
            .iter()
            .filter(|i| i.scope == inline && i.alias.is_none())
        {
            let mut at = file.module.clone();
            at.extend(glob.scope.iter().cloned());
            let mut target = glob.segments.clone();
            target.push(name.to_string());
            if let Some(found) = self.resolve(&at, &target, hops + 1) {
                return Some(found);
            }
        }
        // Not found (a variant, a macro's item): the module's own file.
        Some(index)
    }

    /// The edges, each with the place that makes it.
    fn edges(&self) -> BTreeMap<(usize, usize), String> {
        let mut edges = BTreeMap::new();
        for (from, file) in self.files.iter().enumerate() {
            let mut add = |to: Resolved, line: usize, text: String| {
                if let Some(to) = to
                    && to != from
                {
                    edges
                        .entry((from, to))
                        .or_insert_with(|| format!("{}:{line}: {text}", self.names[from]));
                }
            };
            for import in file.imports.iter().filter(|i| !i.public) {
                let mut at = file.module.clone();
                at.extend(import.scope.iter().cloned());
                let segments = &import.segments;
                let text = format!("use {}", segments.join("::"));
                if import.alias.is_none() {
                    // A glob uses the module's own file.
                    let resolved = self.module_file_of(&at, segments);
                    add(resolved, import.line, format!("{text}::*"));
                    continue;
                }
                add(self.resolve(&at, segments, 0), import.line, text);
            }
            for reference in &file.references {
                let mut at = file.module.clone();
                at.extend(reference.scope.iter().cloned());
                add(
                    self.resolve(&at, &reference.segments, 0),
                    reference.line,
                    reference.segments.join("::"),
                );
            }
        }
        edges
    }

    /// The file of the module `segments` name, written in `context`.
    fn module_file_of(&self, context: &[String], segments: &[String]) -> Resolved {
        let mut base: Vec<String> = match segments.first()?.as_str() {
            "crate" => Vec::new(),
            "self" => context.to_vec(),
            "super" => {
                let mut base = context.to_vec();
                for _ in segments.iter().take_while(|s| *s == "super") {
                    base.pop()?;
                }
                base
            }
            _ => context.to_vec(),
        };
        for segment in segments
            .iter()
            .skip_while(|s| *s == "crate" || *s == "self" || *s == "super")
        {
            base.push(segment.clone());
        }
        self.module_file(&base).map(|(file, _)| file)
    }
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(count: usize, edges: &BTreeMap<(usize, usize), String>) -> Vec<Vec<usize>> {
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &(a, b) in edges.keys() {
        next[a].push(b);
    }
    struct State {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        found: Vec<Vec<usize>>,
    }
    fn visit(v: usize, next: &[Vec<usize>], s: &mut State) {
        s.index[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &next[v] {
            match s.index[w] {
                None => {
                    visit(w, next, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(index) if s.on_stack[w] => s.low[v] = s.low[v].min(index),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        index: vec![None; count],
        low: vec![0; count],
        on_stack: vec![false; count],
        stack: Vec::new(),
        counter: 0,
        found: Vec::new(),
    };
    for v in 0..count {
        if state.index[v].is_none() {
            visit(v, &next, &mut state);
        }
    }
    state.found
}

/// One shortest cycle through the first file of `component`, as the
/// lines that make its edges.
fn explain(component: &[usize], edges: &BTreeMap<(usize, usize), String>) -> Vec<String> {
    let start = component[0];
    let inside: BTreeSet<usize> = component.iter().copied().collect();
    let mut came_from: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(a, b) in edges.keys() {
            if a != v || !inside.contains(&b) {
                continue;
            }
            if b == start {
                let mut path = vec![(v, start)];
                let mut at = v;
                while at != start {
                    let before = came_from[&at];
                    path.push((before, at));
                    at = before;
                }
                path.reverse();
                return path.iter().map(|e| edges[e].clone()).collect();
            }
            if let std::collections::hash_map::Entry::Vacant(entry) = came_from.entry(b) {
                entry.insert(v);
                queue.push_back(b);
            }
        }
    }
    Vec::new()
}

/// The graph of files given as (path under src, source).
fn graph_of(sources: Vec<(PathBuf, String)>) -> Graph {
    let mut graph = Graph {
        names: Vec::new(),
        files: Vec::new(),
        by_module: HashMap::new(),
    };
    for (relative, source) in sources {
        let Some(module) = module_of(&relative) else {
            continue;
        };
        graph.by_module.insert(module.clone(), graph.files.len());
        graph.names.push(relative.display().to_string());
        graph.files.push(parse(module, &source));
    }
    graph
}

/// The graph of host/src.
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    graph_of(
        paths
            .into_iter()
            .map(|path| {
                let source = std::fs::read_to_string(&path).unwrap();
                (path.strip_prefix(&src).unwrap().to_path_buf(), source)
            })
            .collect(),
    )
}

/// The cycles of a made-up crate, as sets of file names.
fn cycles_of(files: &[(&str, &str)]) -> Vec<Vec<String>> {
    let graph = graph_of(
        files
            .iter()
            .map(|(path, source)| (PathBuf::from(path), source.to_string()))
            .collect(),
    );
    cycles(graph.files.len(), &graph.edges())
        .into_iter()
        .map(|c| {
            let mut names: Vec<String> = c.into_iter().map(|f| graph.names[f].clone()).collect();
            names.sort();
            names
        })
        .collect()
}

/// The check itself: a child using its parent's item while the parent
/// uses the child's is a cycle, however the paths are written; a parent
/// that only declares and re-exports its child is not, nor are paths
/// that only look alike (in strings, comments, other crates).
#[test]
fn the_check_tells_cycles_from_re_exports() {
    let lib = ("lib.rs", "pub mod a;\npub mod b;\n");
    let parent_uses_child = "mod child;\npub struct Error;\nfn f() { child::g(); }\n";
    for child in [
        "use super::Error;\npub fn g() {}\n",
        "pub fn g() -> crate::a::Error { todo!() }\n",
        "pub fn g() { let _ = super::Error; }\n",
        "#[cfg(test)]\nmod tests {\n    use crate::a::Error;\n}\npub fn g() {}\n",
    ] {
        let found = cycles_of(&[
            lib,
            ("a/mod.rs", parent_uses_child),
            ("a/child.rs", child),
            ("b.rs", ""),
        ]);
        assert_eq!(
            found,
            vec![vec!["a/child.rs".to_string(), "a/mod.rs".to_string()]],
            "{child}"
        );
    }
    // Re-exports, look-alikes and a third file break no rule.
    let found = cycles_of(&[
        lib,
        (
            "a/mod.rs",
            "mod child;\npub use child::g;\nfn f() { let _ = \"super::Error\"; }\n",
        ),
        (
            "a/child.rs",
            "// uses super::f\nuse crate::b::Error;\npub fn g() { std::mem::drop(1); }\n",
        ),
        ("b.rs", "pub struct Error;\n"),
        ("c.rs", "fn h() { crate::a::g(); }\n"),
    ]);
    assert!(found.is_empty(), "{found:?}");
    // Through a re-export, a use reaches the file that defines the item.
    let found = cycles_of(&[
        lib,
        ("a/mod.rs", "mod child;\npub use child::g;\n"),
        ("a/child.rs", "pub fn g() { crate::b::h(); }\n"),
        ("b.rs", "pub fn h() { crate::a::g(); }\n"),
    ]);
    assert_eq!(
        found,
        vec![vec!["a/child.rs".to_string(), "b.rs".to_string()]]
    );
}

#[test]
fn no_import_cycles_between_the_files_of_host_src() {
    let graph = graph();
    let edges = graph.edges();
    let mut found = Vec::new();
    for component in cycles(graph.files.len(), &edges) {
        let files: BTreeSet<&str> = component.iter().map(|&f| graph.names[f].as_str()).collect();
        let inside: BTreeSet<usize> = component.iter().copied().collect();
        let all: Vec<&str> = edges
            .iter()
            .filter(|((a, b), _)| inside.contains(a) && inside.contains(b))
            .map(|(_, place)| place.as_str())
            .collect();
        found.push(format!(
            "{files:?}, for example:\n    {}\n  every edge inside it:\n    {}",
            explain(&component, &edges).join("\n    "),
            all.join("\n    ")
        ));
    }
    assert!(
        found.is_empty(),
        "import cycles between files:\n{}",
        found.join("\n")
    );
}
