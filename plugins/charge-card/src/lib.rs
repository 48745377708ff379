//! `charge-card`: charges `amount` for an order and passes it on with a charge id.
//! Amounts over 1000 are declined (a permanent, non-retryable error), which is how the
//! order saga example shows its compensations. `refund-card` undoes a charge.

use serde_json::{Map, Value};
use tta_guest::{Context, Error, ErrorKind, JsonPrimitive, Metadata};

struct Charge;

impl JsonPrimitive for Charge {
    type Input = Map<String, Value>;
    type Output = Map<String, Value>;

    fn describe() -> Metadata {
        Metadata::new("charge-card", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION")).title("Charge a card")
    }

    fn run(ctx: &Context, mut order: Map<String, Value>) -> Result<Map<String, Value>, Error> {
        let amount = order
            .get("amount")
            .and_then(Value::as_f64)
            .ok_or_else(|| Error::invalid_input("`amount` is missing"))?;
        if amount > 1000.0 {
            tta_guest::warn!(amount = amount; "card declined");
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("card declined for {amount:.2}: over the 1000.00 limit"),
                false,
            ));
        }
        let charge = format!(
            "chg-{:.0}-{}",
            amount * 100.0,
            &ctx.correlation_id.chars().take(8).collect::<String>()
        );
        tta_guest::info!(amount = amount; "card charged");
        order.insert("charge".into(), Value::String(charge));
        Ok(order)
    }
}

tta_guest::export!(Charge);
