//! Where each configuration value comes from. Every source — the defaults, the file, the
//! `VIGIA__` environment variables, a test's overrides — is read into a tree of its own, so each
//! key can be traced to the last source that set it; the trees are then merged in that order by
//! the `config` crate, later ones winning, as they always were.
//!
//! Only variables that start with `VIGIA__` (two underscores, any case) are configuration:
//! `VIGIA_TEST_POSTGRES_URL`, `VIGIA_BIN` and other single-underscore names are not (the
//! `config` crate's prefix is `vigia` joined to the `__` separator; a test pins it).

use std::{collections::BTreeMap, fmt, path::Path};

use anyhow::Context;
use config::{Config, Environment, File, FileFormat, Value, ValueKind};

use super::keys::join;

/// The prefix of configuration variables, compared case-insensitively, as the crate does.
const ENV_PREFIX: &str = "vigia__";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in defaults (or, for an optional key nobody set, its absence).
    Default,
    /// The configuration file, as named on the command line (or `vigia.toml`).
    File(String),
    /// An environment variable, by its name as set.
    Env(String),
    /// A key set by a program through `Settings::from_overrides` (tests, tools).
    Override,
}

impl fmt::Display for Origin {
    /// As `vigia config show` labels a value: `default`, `file vigia.toml`, `env VIGIA__…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(path) => write!(f, "file {path}"),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Override => write!(f, "override"),
        }
    }
}

impl Origin {
    /// Where an error says a key was written: `in vigia.toml`, `in environment variable …`.
    pub fn place(&self) -> String {
        match self {
            Origin::Default => "in the built-in defaults".into(),
            Origin::File(path) => format!("in {path}"),
            Origin::Env(name) => format!("in environment variable {name}"),
            Origin::Override => "in an override".into(),
        }
    }
}

/// Which configuration file to read.
pub(super) enum FileChoice<'a> {
    /// `./vigia.toml` when it exists.
    WorkingDirectory,
    /// This file, which must exist (`--config FILE`).
    Given(&'a Path),
    /// None at all (`Settings::from_overrides`).
    Nothing,
}

/// The merged configuration tree and the origin of every key in it.
pub(super) struct Layers {
    pub merged: Value,
    /// Every path of the merged tree (sections and leaves), with the last source that set it.
    origins: BTreeMap<String, Origin>,
}

/// The `VIGIA__…` variables of this process, names as set. A non-UTF-8 name cannot be one of
/// ours (skipped, as the crate skips it); a non-UTF-8 value of one of ours is refused.
pub(super) fn environment() -> anyhow::Result<Vec<(String, String)>> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.to_lowercase()
                .starts_with(ENV_PREFIX)
                .then_some((name, value))
        })
        .map(|(name, value)| match value.into_string() {
            Ok(value) => Ok((name, value)),
            Err(_) => Err(anyhow::anyhow!(
                "environment variable {name} is not valid UTF-8"
            )),
        })
        .collect()
}

impl Layers {
    /// Reads `defaults`, then `file`, then the variables `env`, then `overrides`.
    pub fn read(
        defaults: &str,
        file: FileChoice<'_>,
        env: &[(String, String)],
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut origins = BTreeMap::new();
        let mut merged = Config::builder();

        let defaults = Config::builder()
            .add_source(File::from_str(defaults, FileFormat::Toml))
            .build()
            .context("BUG: the built-in defaults do not parse")?;
        note(&defaults.cache, "", &|_| Origin::Default, &mut origins);
        merged = merged.add_source(defaults);

        let file = match file {
            FileChoice::WorkingDirectory => Some((
                File::with_name("vigia.toml").required(false),
                "vigia.toml".to_owned(),
            )),
            FileChoice::Given(path) => {
                Some((File::from(path).required(true), path.display().to_string()))
            }
            FileChoice::Nothing => None,
        };
        if let Some((source, name)) = file {
            let file = Config::builder()
                .add_source(source)
                .build()
                .context("reading the configuration")?;
            note(
                &file.cache,
                "",
                &|_| Origin::File(name.clone()),
                &mut origins,
            );
            merged = merged.add_source(file);
        }

        // The variables' paths as the crate derives them (lowercased, prefix cut, `__` → `.`),
        // to name each value's variable.
        let names: BTreeMap<String, String> = env
            .iter()
            .filter_map(|(name, _)| {
                let lower = name.to_lowercase();
                let rest = lower.strip_prefix(ENV_PREFIX)?;
                Some((rest.replace("__", "."), name.clone()))
            })
            .collect();
        let variables = Environment::with_prefix("VIGIA")
            .separator("__")
            .try_parsing(true)
            .source(Some(env.iter().cloned().collect()));
        let env = Config::builder()
            .add_source(variables)
            .build()
            .context("reading VIGIA__ variables")?;
        let variable =
            |path: &str| {
                Origin::Env(names.get(path).cloned().unwrap_or_else(|| {
                    format!("VIGIA__{}", path.replace('.', "__").to_uppercase())
                }))
            };
        note(&env.cache, "", &variable, &mut origins);
        merged = merged.add_source(env);

        if !overrides.is_empty() {
            let mut builder = Config::builder();
            for (key, value) in overrides {
                builder = builder.set_override(*key, *value)?;
            }
            let overridden = builder.build()?;
            note(&overridden.cache, "", &|_| Origin::Override, &mut origins);
            merged = merged.add_source(overridden);
        }

        Ok(Self {
            merged: merged.build()?.cache,
            origins,
        })
    }

    /// The last source that set `key`; [`Origin::Default`] for a key nobody set.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// The merged value of `key`, if any source set it.
    pub fn value(&self, key: &str) -> Option<&Value> {
        key.split('.')
            .try_fold(&self.merged, |value, segment| match &value.kind {
                ValueKind::Table(map) => map.get(segment),
                _ => None,
            })
    }

    /// The leaf keys at or under `key` (an unknown section is reported by its keys), or `key`
    /// itself for an empty section.
    pub fn leaves_under(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}.");
        let leaves: Vec<String> = self
            .origins
            .keys()
            .filter(|path| *path == key || path.starts_with(&prefix))
            .filter(|path| !matches!(self.value(path).map(|v| &v.kind), Some(ValueKind::Table(_))))
            .cloned()
            .collect();
        if leaves.is_empty() {
            vec![key.to_owned()]
        } else {
            leaves
        }
    }
}

/// Records `origin` for every path of `tree` under `path`.
fn note(
    tree: &Value,
    path: &str,
    origin: &dyn Fn(&str) -> Origin,
    origins: &mut BTreeMap<String, Origin>,
) {
    if let ValueKind::Table(map) = &tree.kind {
        for (key, value) in map {
            let key = join(path, key);
            origins.insert(key.clone(), origin(&key));
            note(value, &key, origin, origins);
        }
    }
}
