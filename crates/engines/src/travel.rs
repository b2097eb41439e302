//! Results that never leave their process still go through the encoding that results crossing
//! processes take (postcard), so that a result type that cannot travel fails the same way
//! whichever process, and whichever engine, renders it.
//!
//! Without it a program tested with `SerialEngine`, `MultiThreadEngine` or one MPI process
//! never encodes a result, and an untagged serde enum, a `#[serde(flatten)]` field or a
//! `skip_serializing_if` (which postcard cannot read back) fails only on a cluster, and only
//! for the tasks that another rank happened to render.
//!
//! The first result of each run is checked (what a type that cannot travel at all needs),
//! and in builds with debug assertions every result, so that a test run also catches a
//! `Serialize` that fails for some values only. A release run pays one encoding per run.

use crate::error::{panic_message, EngineError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};

/// The check for one run, shared by its render threads.
#[derive(Debug, Default)]
pub(crate) struct TravelCheck {
    first_done: AtomicBool,
}

impl TravelCheck {
    /// Checks `result`, of task `task` on process `rank`, if it is this run's first or this
    /// build checks every result. The result's serde impls are user code: a panic in them is
    /// this task's failure too.
    pub(crate) fn check<R: Serialize + DeserializeOwned>(
        &self,
        rank: usize,
        task: usize,
        result: &R,
    ) -> Result<(), EngineError> {
        if !cfg!(debug_assertions) && self.first_done.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let codec = |what: &str, message: String| EngineError::Codec {
            rank,
            task: Some(task),
            what: what.to_string(),
            message,
        };
        let panicked =
            |p: Box<dyn std::any::Any + Send>| format!("panicked: {}", panic_message(&*p));
        let bytes =
            prism_comm::catch_panic(|| postcard::to_stdvec(result).map_err(|e| e.to_string()))
                .unwrap_or_else(|p| Err(panicked(p)))
                .map_err(|m| codec("encoded", m))?;
        prism_comm::catch_panic(|| {
            postcard::from_bytes::<R>(&bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|p| Err(panicked(p)))
        .map_err(|m| codec("decoded", m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize)]
    struct Fine {
        x: f64,
        name: String,
    }

    /// Writes fine, reads back as nothing postcard can decode: postcard is not
    /// self-describing, and an untagged enum needs to look ahead.
    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        A(u32),
    }

    #[test]
    fn a_result_that_cannot_be_read_back_is_named_with_its_task_and_process() {
        let check = TravelCheck::default();
        assert!(check
            .check(
                0,
                0,
                &Fine {
                    x: f64::NAN,
                    name: "n".into()
                }
            )
            .is_ok());
        let fresh = TravelCheck::default();
        match fresh.check(3, 17, &Untagged::A(1)) {
            Err(EngineError::Codec {
                rank: 3,
                task: Some(17),
                what,
                ..
            }) => assert_eq!(what, "decoded"),
            other => panic!("expected a decoding failure, got {other:?}"),
        }
    }

    struct FailsToEncode;

    impl Serialize for FailsToEncode {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no"))
        }
    }

    impl<'de> Deserialize<'de> for FailsToEncode {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Ok(FailsToEncode)
        }
    }

    #[test]
    fn a_result_that_cannot_be_encoded_says_so() {
        let e = TravelCheck::default()
            .check(0, 5, &FailsToEncode)
            .unwrap_err();
        assert!(
            matches!(&e, EngineError::Codec { what, task: Some(5), .. } if what == "encoded"),
            "{e:?}"
        );
    }

    struct PanicsToEncode;

    impl Serialize for PanicsToEncode {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("grumpy serializer")
        }
    }

    impl<'de> Deserialize<'de> for PanicsToEncode {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Ok(PanicsToEncode)
        }
    }

    #[test]
    fn a_panic_in_a_results_serialize_is_that_tasks_failure() {
        let e = TravelCheck::default()
            .check(2, 9, &PanicsToEncode)
            .unwrap_err();
        assert!(
            matches!(&e, EngineError::Codec { rank: 2, task: Some(9), what, message }
                if what == "encoded" && message == "panicked: grumpy serializer"),
            "{e:?}"
        );
    }

    /// Encodes, then panics on the way back.
    struct PanicsToDecode;

    impl Serialize for PanicsToDecode {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u8(1)
        }
    }

    impl<'de> Deserialize<'de> for PanicsToDecode {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            panic!("grumpy deserializer")
        }
    }

    #[test]
    fn a_panic_in_a_results_deserialize_is_said_to_be_in_decoding() {
        let e = TravelCheck::default()
            .check(0, 4, &PanicsToDecode)
            .unwrap_err();
        assert!(
            matches!(&e, EngineError::Codec { task: Some(4), what, message, .. }
                if what == "decoded" && message == "panicked: grumpy deserializer"),
            "{e:?}"
        );
    }

    /// Test builds have debug assertions: every result is checked, not only the first.
    #[test]
    fn in_a_debug_build_every_result_is_checked() {
        let check = TravelCheck::default();
        check.check(0, 0, &1u32).unwrap();
        assert_eq!(
            check.check(0, 1, &FailsToEncode).is_err(),
            cfg!(debug_assertions)
        );
    }
}
