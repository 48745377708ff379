//! The versions of `tta:primitives` a component may export, and what a call does with
//! each: instantiate, `execute`, `describe`. What differs between 0.1.0 and 0.2.0 is
//! confined here (and in `imports::v2`); the rest of the host sees the 0.1.0 types of the
//! context and errors, and its own [`Metadata`].

use super::state::CallState;
use crate::imports::v2::error_back;
use tta_core::bindings::{Context, PrimitivePlugin, PrimitivePluginPre, WitError, v2};
use tta_core::metadata::{Contract, Metadata};
use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

/// A component pre-linked for the version of the contract it exports.
pub enum Pre {
    /// It exports `tta:primitives/primitive@0.1.0`.
    V0_1_0(PrimitivePluginPre<CallState>),
    /// It exports `tta:primitives/primitive@0.2.0`.
    V0_2_0(v2::PrimitivePluginPre<CallState>),
}

/// An instance's typed exports, of either version.
pub(crate) enum Exports {
    V0_1_0(PrimitivePlugin),
    V0_2_0(v2::PrimitivePlugin),
}

impl Pre {
    /// The pre-linked component as the version it exports; the 0.1.0 error when it exports
    /// neither.
    pub fn new(pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        match PrimitivePluginPre::new(pre.clone()) {
            Ok(pre) => Ok(Pre::V0_1_0(pre)),
            Err(first) => v2::PrimitivePluginPre::new(pre).map(Pre::V0_2_0).map_err(|_| first),
        }
    }

    /// The version it exports.
    pub fn contract(&self) -> Contract {
        match self {
            Pre::V0_1_0(_) => Contract::V0_1_0,
            Pre::V0_2_0(_) => Contract::V0_2_0,
        }
    }

    pub(crate) fn instance_pre(&self) -> &InstancePre<CallState> {
        match self {
            Pre::V0_1_0(pre) => pre.instance_pre(),
            Pre::V0_2_0(pre) => pre.instance_pre(),
        }
    }

    /// Instantiates it with its typed exports.
    pub(crate) async fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::V0_1_0(pre) => Exports::V0_1_0(pre.instantiate_async(store).await?),
            Pre::V0_2_0(pre) => Exports::V0_2_0(pre.instantiate_async(store).await?),
        })
    }

    /// The typed exports of `instance`, checked against the version's types.
    pub(crate) fn exports(&self, store: &mut Store<CallState>, instance: &Instance) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::V0_1_0(_) => Exports::V0_1_0(PrimitivePlugin::new(store, instance)?),
            Pre::V0_2_0(_) => Exports::V0_2_0(v2::PrimitivePlugin::new(store, instance)?),
        })
    }
}

impl Exports {
    /// Calls `execute`.
    pub(crate) async fn execute(
        &self,
        store: &mut Store<CallState>,
        context: &Context,
        input: &[u8],
    ) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        match self {
            Exports::V0_1_0(p) => p.tta_primitives_primitive().call_execute(store, context, input).await,
            Exports::V0_2_0(p) => {
                let context = v2::Context {
                    correlation_id: context.correlation_id.clone(),
                    traceparent: context.traceparent.clone(),
                    tracestate: context.tracestate.clone(),
                    tenant: context.tenant.clone(),
                    data: context.data.clone(),
                    deadline_ms: context.deadline_ms,
                };
                let result = p
                    .tta_primitives_primitive()
                    .call_execute(store, &context, input)
                    .await?;
                Ok(result.map_err(error_back))
            }
        }
    }

    /// Calls `describe`.
    pub(crate) async fn describe(&self, store: &mut Store<CallState>) -> wasmtime::Result<Metadata> {
        Ok(match self {
            Exports::V0_1_0(p) => Metadata::from(p.tta_primitives_primitive().call_describe(store).await?),
            Exports::V0_2_0(p) => Metadata::from(p.tta_primitives_primitive().call_describe(store).await?),
        })
    }
}
