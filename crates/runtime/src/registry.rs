//! The primitives loaded into a host, by name, and who may call which.
//!
//! Swapped whole on every change (see `Host::update_registry`), so a lookup on the call
//! path takes no lock and a call in flight keeps the primitives it started with.

use crate::primitive::Primitive;
use crate::tenant::Access;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tta_core::error::LoadError;

/// The primitives loaded into a host, by name: the shared ones (from the command line or
/// the plugins directory) and each tenant's own uploads, which only that tenant sees.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    primitives: BTreeMap<String, Arc<Primitive>>,
    owned: BTreeMap<String, BTreeMap<String, Arc<Primitive>>>,
}

impl Registry {
    /// The primitive `name` as `access` sees it: the tenant's own upload first, then a
    /// shared one it is allowed; with no access (the operator), any shared one.
    pub fn resolve(&self, access: Option<&Access>, name: &str) -> Option<Arc<Primitive>> {
        match access {
            None => self.primitives.get(name).cloned(),
            Some(access) => self
                .owned
                .get(&access.tenant)
                .and_then(|own| own.get(name))
                .or_else(|| self.primitives.get(name).filter(|_| access.may_call(name)))
                .cloned(),
        }
    }

    /// Every primitive `access` may call, sorted by name; its own shadow shared ones.
    pub fn visible(&self, access: Option<&Access>) -> Vec<Arc<Primitive>> {
        let Some(access) = access else {
            return self.primitives.values().cloned().collect();
        };
        let mut seen: BTreeMap<&str, &Arc<Primitive>> = self
            .primitives
            .iter()
            .filter(|(name, _)| access.may_call(name))
            .map(|(name, primitive)| (name.as_str(), primitive))
            .collect();
        if let Some(own) = self.owned.get(&access.tenant) {
            seen.extend(own.iter().map(|(name, primitive)| (name.as_str(), primitive)));
        }
        seen.into_values().cloned().collect()
    }

    /// The names of [`Registry::visible`].
    pub fn visible_names(&self, access: Option<&Access>) -> Vec<String> {
        self.visible(access).iter().map(|p| p.metadata.name.clone()).collect()
    }

    /// The tenant's own primitive `name`.
    pub fn owned(&self, tenant: &str, name: &str) -> Option<Arc<Primitive>> {
        self.owned.get(tenant).and_then(|own| own.get(name)).cloned()
    }

    /// How many primitives of its own the tenant has.
    pub fn owned_count(&self, tenant: &str) -> usize {
        self.owned.get(tenant).map_or(0, BTreeMap::len)
    }

    /// Adds or replaces the tenant's own primitive.
    pub fn insert_owned(&mut self, tenant: &str, primitive: Arc<Primitive>) {
        self.owned
            .entry(tenant.to_owned())
            .or_default()
            .insert(primitive.metadata.name.clone(), primitive);
    }

    /// Removes the tenant's own primitive `name`; returns it if there was one.
    pub fn remove_owned(&mut self, tenant: &str, name: &str) -> Option<Arc<Primitive>> {
        self.owned.get_mut(tenant).and_then(|own| own.remove(name))
    }

    /// Removes the shared primitive `name`; returns it if there was one.
    pub fn remove(&mut self, name: &str) -> Option<Arc<Primitive>> {
        self.primitives.remove(name)
    }

    /// Removes the shared primitives loaded from `path`; returns their names.
    pub fn remove_path(&mut self, path: &Path) -> Vec<String> {
        let names: Vec<String> = self
            .primitives
            .iter()
            .filter(|(_, p)| p.path == path)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &names {
            self.primitives.remove(name);
        }
        names
    }

    /// The primitive called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Primitive>> {
        self.primitives.get(name).cloned()
    }

    /// The names of all loaded primitives, sorted.
    pub fn names(&self) -> Vec<String> {
        self.primitives.keys().cloned().collect()
    }

    /// All loaded primitives, sorted by name.
    pub fn primitives(&self) -> impl Iterator<Item = &Arc<Primitive>> {
        self.primitives.values()
    }

    /// Whether any loaded primitive, shared or a tenant's, has the component `digest`.
    pub fn uses_digest(&self, digest: &str) -> bool {
        self.primitives
            .values()
            .chain(self.owned.values().flat_map(BTreeMap::values))
            .any(|p| p.digest == digest)
    }

    /// Adds `plugin`; a different file with the same name is refused, the same file replaced.
    pub fn insert(&mut self, primitive: Arc<Primitive>) -> Result<(), LoadError> {
        if let Some(existing) = self.primitives.get(&primitive.metadata.name)
            && existing.path != primitive.path
        {
            return Err(LoadError::Duplicate {
                path: primitive.path.clone(),
                name: primitive.metadata.name.clone(),
                existing: existing.path.clone(),
            });
        }
        self.primitives.insert(primitive.metadata.name.clone(), primitive);
        Ok(())
    }
}
