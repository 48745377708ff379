//! `reserve-stock`: reserves `qty` of `sku` for an order and passes the order on with its
//! reservation id. The first step of the order saga; `release-stock` undoes it.

use serde_json::{Map, Value};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

struct Reserve;

impl JsonPrimitive for Reserve {
    type Input = Map<String, Value>;
    type Output = Map<String, Value>;

    fn describe() -> Metadata {
        Metadata::new(
            "reserve-stock",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
    }

    fn run(ctx: &Context, mut order: Map<String, Value>) -> Result<Map<String, Value>, Error> {
        let sku = order
            .get("sku")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid_input("`sku` is missing"))?;
        let qty = order.get("qty").and_then(Value::as_u64).unwrap_or(1);
        if qty == 0 || qty > 100 {
            return Err(Error::invalid_input(format!("`qty` must be 1 to 100, got {qty}")));
        }
        let reservation = format!(
            "rsv-{sku}-{qty}-{}",
            &ctx.correlation_id.chars().take(8).collect::<String>()
        );
        tta_guest::info!(sku = sku, qty = qty; "stock reserved");
        order.insert("reservation".into(), Value::String(reservation));
        Ok(order)
    }
}

tta_guest::export!(Reserve);
