//! `router = { routes = {...}, by = "/pointer" | classifier = "primitive", default = "route" }`:
//! one route chosen by a rule on the input or by a classifier primitive.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Kind, StepCall, StepRef, StepResult, as_json, text};
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;
use toml::Spanned;
use tta_core::error::{StepError, StepErrorKind};
use tta_runtime::primitive::Primitive;

/// `router = { routes = {...}, by = "/pointer" | classifier = "primitive", default = "route" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Router {
    /// Route names and the step each one runs.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub routes: BTreeMap<String, StepRef>,
    /// A JSON pointer into the input whose string value names the route.
    #[schemars(with = "Option<String>")]
    pub by: Option<Spanned<String>>,
    /// A primitive whose output (a JSON string, or `{"route": …}`) names the route.
    #[schemars(with = "Option<String>")]
    pub classifier: Option<Spanned<String>>,
    /// The route taken when the rule or classifier names none of `routes`.
    #[schemars(with = "Option<String>")]
    pub default: Option<Spanned<String>>,
}

impl Definition for Router {
    fn key(&self) -> &'static str {
        "router"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        self.routes
            .iter()
            .map(|(k, s)| (format!("router.routes.{k}"), s))
            .collect()
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        if self.routes.is_empty() {
            c.need(
                span.clone(),
                format!("{at}.router.routes"),
                false,
                "`routes = { name = \"step\", … }`",
            );
        }
        match (&self.by, &self.classifier) {
            (None, None) => c.need(
                span,
                format!("{at}.router.by"),
                false,
                "`by = \"/pointer\"` or `classifier = \"primitive\"` to choose a route",
            ),
            (Some(_), Some(_)) => c.report(span, format!("{at}.router"), "give `by` or `classifier`, not both"),
            (Some(p), None) => c.pointer(&format!("{at}.router.by"), p),
            (None, Some(p)) => c.primitive_ref(&format!("{at}.router.classifier"), p),
        }
        if let Some(d) = &self.default
            && !self.routes.contains_key(d.get_ref())
        {
            let routes: Vec<&str> = self.routes.keys().map(String::as_str).collect();
            c.report(
                d.span(),
                format!("{at}.router.default"),
                format!(
                    "route `{}` has no target: routes are {}",
                    d.get_ref(),
                    routes.join(", ")
                ),
            );
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        let by = match (&self.by, &self.classifier) {
            (Some(p), _) => RouteBy::Pointer(p.get_ref().clone()),
            (None, Some(c)) => RouteBy::Classifier(cx.primitive(c.get_ref())?),
            (None, None) => return Err(cx.missing()),
        };
        cx.combinator(Routes {
            routes: self.routes.iter().map(|(k, v)| (k.clone(), cx.at(v))).collect(),
            by,
            default: self.default.as_ref().map(|d| d.get_ref().clone()),
        })
    }
}

enum RouteBy {
    Pointer(String),
    Classifier(Arc<Primitive>),
}

struct Routes {
    routes: BTreeMap<String, usize>,
    by: RouteBy,
    default: Option<String>,
}

impl Combinator for Routes {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            let decided = Instant::now();
            let (wanted, how) = match &self.by {
                RouteBy::Pointer(pointer) => {
                    let document: Option<Json> = serde_json::from_slice(&input).ok();
                    let wanted = document.as_ref().and_then(|d| d.pointer(pointer)).map(|v| match v {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                    (wanted, "rule")
                }
                RouteBy::Classifier(primitive) => {
                    let output = run.call(name, primitive, &input, &scope).await?;
                    let wanted = match as_json(&output) {
                        Json::String(s) => Some(s.trim().to_owned()),
                        Json::Object(o) => o.get("route").and_then(Json::as_str).map(str::to_owned),
                        _ => None,
                    };
                    (wanted, "classifier")
                }
            };
            let route = match wanted.as_deref() {
                Some(r) if self.routes.contains_key(r) => r.to_owned(),
                _ => match &self.default {
                    Some(d) => d.clone(),
                    None => {
                        let known: Vec<&str> = self.routes.keys().map(String::as_str).collect();
                        return Err(StepError::new(
                            name,
                            StepErrorKind::NoRoute,
                            format!(
                                "the {how} chose {}, which is not a route ({}), and there is no default",
                                wanted.map_or("nothing".to_owned(), |w| format!("`{w}`")),
                                known.join(", ")
                            ),
                        ));
                    }
                },
            };
            let (workflow, tenant) = run.labels();
            let metrics = run.metrics();
            metrics
                .router_route_selected
                .with_label_values(&[workflow, name, route.as_str(), tenant])
                .inc();
            metrics
                .router_decision_duration
                .with_label_values(&[workflow, name, tenant])
                .observe(decided.elapsed().as_secs_f64());
            span.attr("route_selected", text(&route));
            span.event(
                "route_decision_made",
                vec![("route".into(), text(&route)), ("by".into(), text(how))],
            );
            match self.routes.get(&route) {
                Some(&target) => run.step(target, input, scope).await,
                None => Err(StepError::new(
                    name,
                    StepErrorKind::NoRoute,
                    format!("route `{route}` has no target"),
                )),
            }
        })
    }
}
