//! Objects from the API server checked one by one: a list or watch event whose object
//! does not match its kind's schema (a Pod whose `metadata.labels` is a number) would
//! otherwise fail the whole list, and with it every good object around it. [`Checked`]
//! reads any JSON object; one that is not a valid `K` keeps its names and the reason,
//! so that it is logged and left out while the others are used.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, runtime::watcher};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::Value;

/// An object as the API server sent it: a valid `K`, or what could be read of it.
#[derive(Clone, Debug)]
pub enum Checked<K> {
    Good(K),
    Bad {
        /// Its name, namespace and resource version, where they are strings.
        meta: Box<ObjectMeta>,
        /// Where and why it does not match the schema (`metadata.labels: invalid type`).
        reason: String,
    },
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Checked<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(match serde_path_to_error::deserialize::<_, K>(&value) {
            Ok(k) => Checked::Good(k),
            Err(e) => Checked::Bad {
                meta: names(&value),
                reason: e.to_string(),
            },
        })
    }
}

/// The metadata of an object that is not valid: the fields of it that are strings.
fn names(value: &Value) -> Box<ObjectMeta> {
    let field = |f: &str| value["metadata"][f].as_str().map(str::to_owned);
    Box::new(ObjectMeta {
        name: field("name"),
        namespace: field("namespace"),
        resource_version: field("resourceVersion"),
        uid: field("uid"),
        ..ObjectMeta::default()
    })
}

impl<K: Resource> Resource for Checked<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Checked::Good(k) => k.meta(),
            Checked::Bad { meta, .. } => meta,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Checked::Good(k) => k.meta_mut(),
            Checked::Bad { meta, .. } => meta,
        }
    }
}

/// How an object is named in the log: `shop/web-1`, or `web-1` without a namespace.
pub fn display_name(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("(no name)");
    match &meta.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// The event with its object when that is valid; a bad object is logged (its kind, name
/// and why) and left out: an added or changed one keeps what the store had of it, a
/// deleted one is deleted by its name.
pub fn sort<K>(event: watcher::Event<Checked<K>>, kind: &str) -> Option<watcher::Event<K>>
where
    K: Resource + Default,
{
    let good = |c: Checked<K>| match c {
        Checked::Good(k) => Some(k),
        Checked::Bad { meta, reason } => {
            log_bad(kind, &meta, &reason);
            None
        }
    };
    Some(match event {
        watcher::Event::Apply(c) => watcher::Event::Apply(good(c)?),
        watcher::Event::InitApply(c) => watcher::Event::InitApply(good(c)?),
        watcher::Event::Delete(Checked::Good(k)) => watcher::Event::Delete(k),
        watcher::Event::Delete(Checked::Bad { meta, .. }) => {
            let mut k = K::default();
            *k.meta_mut() = *meta;
            watcher::Event::Delete(k)
        }
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    })
}

/// Says that an object of `kind` was left out, and why.
pub fn log_bad(kind: &str, meta: &ObjectMeta, reason: &str) {
    tracing::error!(
        "kubernetes: {kind} {} from the API server is not a valid {kind}, left out \
         (the others are used): {reason}",
        display_name(meta)
    );
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_pod_keeps_its_names_and_the_reason() {
        let bad = json!({"metadata": {"name": "p", "namespace": "ns", "labels": 5}});
        match serde_json::from_value::<Checked<Pod>>(bad).expect("any object reads") {
            Checked::Bad { meta, reason } => {
                assert_eq!(display_name(&meta), "ns/p");
                assert!(
                    reason.starts_with("metadata.labels: invalid type"),
                    "{reason}"
                );
            }
            Checked::Good(p) => panic!("a pod with labels 5: {p:?}"),
        }
        let good = json!({"metadata": {"name": "p", "labels": {"a": "b"}}});
        assert!(matches!(
            serde_json::from_value::<Checked<Pod>>(good),
            Ok(Checked::Good(_))
        ));
    }

    #[test]
    fn a_list_with_a_bad_item_keeps_the_good_ones() {
        let list = json!({"metadata": {"resourceVersion": "3"}, "items": [
            {"metadata": {"name": "a"}},
            {"metadata": {"name": "b"}, "spec": {"containers": 1}},
            {"metadata": {"name": "c"}},
        ]});
        let list: kube::core::ObjectList<Checked<Pod>> =
            serde_json::from_value(list).expect("the list reads");
        let good: Vec<Pod> = list
            .items
            .into_iter()
            .filter_map(|c| sort(watcher::Event::InitApply(c), "Pod"))
            .filter_map(|e| match e {
                watcher::Event::InitApply(p) => Some(p),
                _ => None,
            })
            .collect();
        let names: Vec<_> = good.iter().map(|p| p.metadata.name.clone()).collect();
        assert_eq!(names, [Some("a".to_owned()), Some("c".to_owned())]);
    }

    #[test]
    fn a_bad_deleted_object_is_deleted_by_name() {
        let bad: Checked<Pod> = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "labels": []}}),
        )
        .expect("reads");
        match sort(watcher::Event::Delete(bad), "Pod") {
            Some(watcher::Event::Delete(p)) => assert_eq!(p.metadata.name.as_deref(), Some("p")),
            other => panic!("{other:?}"),
        }
    }
}
