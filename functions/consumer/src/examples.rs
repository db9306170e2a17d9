//! The handlers and workflows this deployment runs. Their logic is an
//! example — small, real, and writing its effects to the state table so
//! that tests (and operators) can see them; the framework around them is
//! the product. To handle a new type, write a handler or a workflow here and
//! register it in [`register`]; to give a new domain its own queue, add it to
//! `template.yaml` (see `docs/consumers.md`, "Adding a domain").
//!
//! | type | handler | what it does |
//! |---|---|---|
//! | `order.created` | workflow `order_fulfilment` | validate inventory, reserve stock, calculate shipping, charge payment, send confirmation |
//! | `user.created` | workflow `user_onboarding` | welcome e-mail, default settings, registration analytics, default role |
//! | `payment.completed` | `payment_ledger` | adds the amount to the tenant's ledger total |
//! | `inventory.low` | `restock_request` | records a restock request for the SKU |

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_aws::dynamo::DynamoStateStore;
use switchyard_flow::consumer::{BoxFuture, Consumer, Event, HandlerError, Markers, RegisterError, typed};
use switchyard_flow::workflow::{Effect, RecordRef, StepContext, StepResult, Workflow};

/// How long a workflow run's record is kept after its last step.
pub const RUN_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Registers every example on `consumer`.
pub fn register<M: Markers>(consumer: Consumer<M>, store: Arc<DynamoStateStore>) -> Result<Consumer<M>, RegisterError> {
    let ledger = store.clone();
    let restock = store.clone();
    consumer
        .on("order.created", "order_fulfilment", order_fulfilment(store.clone()))?
        .on("user.created", "user_onboarding", user_onboarding(store))?
        .on(
            "payment.completed",
            "payment_ledger",
            typed(move |e: Event<PaymentCompleted>| {
                let store = ledger.clone();
                async move {
                    let record = RecordRef::new("LEDGER", e.data.currency.to_ascii_uppercase());
                    store
                        .add_to_record(&e.tenant_id, &record, "total_cents", e.data.amount_cents)
                        .await?;
                    Ok(())
                }
            }),
        )?
        .on(
            "inventory.low",
            "restock_request",
            typed(move |e: Event<InventoryLow>| {
                let store = restock.clone();
                async move {
                    let fields = object(json!({
                        "sku": e.data.sku, "available": e.data.available, "requested_by_event": e.id.as_str(),
                    }));
                    store
                        .put_record(&e.tenant_id, &RecordRef::new("RESTOCK", &e.data.sku), &fields)
                        .await?;
                    Ok(())
                }
            }),
        )
}

/// The data of a `payment.completed` event.
#[derive(Debug, Deserialize)]
pub struct PaymentCompleted {
    /// The payment's id.
    pub payment_id: String,
    /// The amount, in the currency's minor unit.
    pub amount_cents: i64,
    /// ISO 4217 currency code.
    pub currency: String,
}

/// The data of an `inventory.low` event.
#[derive(Debug, Deserialize)]
pub struct InventoryLow {
    /// The stock-keeping unit running low.
    pub sku: String,
    /// Units left.
    pub available: i64,
}

// ------------------------------------------------------------------ orders

/// The data of an `order.created` event.
#[derive(Debug, Deserialize)]
pub struct OrderCreated {
    /// The order's id.
    pub order_id: String,
    /// The lines of the order.
    pub items: Vec<OrderItem>,
    /// Where it ships.
    pub ship_to: ShipTo,
    /// Where the confirmation goes.
    pub customer_email: String,
}

/// One line of an order.
#[derive(Debug, Deserialize)]
pub struct OrderItem {
    /// The stock-keeping unit ordered.
    pub sku: String,
    /// Units ordered.
    pub quantity: u32,
    /// Price of one unit, in cents.
    pub unit_price_cents: u64,
}

/// An order's shipping address, as far as the workflow needs it.
#[derive(Debug, Deserialize)]
pub struct ShipTo {
    /// ISO 3166 country code.
    pub country: String,
}

/// The order workflow. Records it reads: `STOCK/<sku>` (`available`,
/// `reserved`) and `SHIPPING_RATE/<country>` (`base_cents`,
/// `per_item_cents`). Records it writes: `STOCK/<sku>.reserved`,
/// `RESERVATION/<order>`, `SHIPMENT/<order>`, `CHARGE/<order>`,
/// `OUTBOX/<order>-confirmation`.
pub fn order_fulfilment(store: Arc<DynamoStateStore>) -> Workflow<DynamoStateStore> {
    Workflow::new("order_fulfilment", store, RUN_RETENTION)
        .step_fn("validate_inventory", validate_inventory)
        .step_fn("reserve_stock", reserve_stock)
        .step_fn("calculate_shipping", calculate_shipping)
        .step_fn("charge_payment", charge_payment)
        .step_fn("send_confirmation", send_confirmation)
}

/// The event's data as `T`; data that does not fit can never be handled.
fn data<T: DeserializeOwned>(cx: &StepContext<'_>) -> Result<T, HandlerError> {
    T::deserialize(Value::Object(cx.event.data.clone()))
        .map_err(|e| HandlerError::permanent(format!("{} data: {e}", cx.event.event_type)))
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn int(fields: &Map<String, Value>, name: &str) -> i64 {
    fields.get(name).and_then(Value::as_i64).unwrap_or(0)
}

/// Quantities per SKU (an order may name a SKU twice).
fn quantities(order: &OrderCreated) -> BTreeMap<&str, i64> {
    let mut q = BTreeMap::new();
    for item in &order.items {
        *q.entry(item.sku.as_str()).or_insert(0) += i64::from(item.quantity);
    }
    q
}

fn validate_inventory<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let order: OrderCreated = data(cx)?;
        if order.items.is_empty() {
            return Err(HandlerError::permanent(format!(
                "order {} has no items",
                order.order_id
            )));
        }
        for (sku, wanted) in quantities(&order) {
            let stock = cx
                .state
                .get(&cx.event.tenant_id, &RecordRef::new("STOCK", sku))
                .await?
                .ok_or_else(|| HandlerError::permanent(format!("unknown SKU {sku}")))?;
            let free = int(&stock, "available") - int(&stock, "reserved");
            if free < wanted {
                return Err(HandlerError::permanent(format!(
                    "SKU {sku}: {wanted} wanted, {free} free"
                )));
            }
        }
        Ok(StepResult {
            output: object(json!({ "skus": quantities(&order).len() })),
            effects: vec![],
        })
    })
}

fn reserve_stock<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let order: OrderCreated = data(cx)?;
        let q = quantities(&order);
        let mut effects: Vec<Effect> = q
            .iter()
            .map(|(sku, n)| Effect::Add {
                record: RecordRef::new("STOCK", *sku),
                field: "reserved".into(),
                delta: *n,
            })
            .collect();
        effects.push(Effect::Put {
            record: RecordRef::new("RESERVATION", &order.order_id),
            fields: object(json!({ "order_id": order.order_id, "items": q })),
        });
        Ok(StepResult {
            output: object(json!({ "reserved_units": q.values().sum::<i64>() })),
            effects,
        })
    })
}

fn calculate_shipping<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let order: OrderCreated = data(cx)?;
        let country = order.ship_to.country.to_ascii_uppercase();
        // A missing rate is transient: operations add it, the retry goes on.
        let rate = cx
            .state
            .get(&cx.event.tenant_id, &RecordRef::new("SHIPPING_RATE", &country))
            .await?
            .ok_or_else(|| HandlerError::transient(format!("no shipping rate for {country} yet")))?;
        let units: i64 = quantities(&order).values().sum();
        let shipping_cents = int(&rate, "base_cents") + int(&rate, "per_item_cents") * units;
        Ok(StepResult {
            output: object(json!({ "shipping_cents": shipping_cents })),
            effects: vec![Effect::Put {
                record: RecordRef::new("SHIPMENT", &order.order_id),
                fields: object(json!({ "country": country, "shipping_cents": shipping_cents, "status": "quoted" })),
            }],
        })
    })
}

fn charge_payment<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let order: OrderCreated = data(cx)?;
        let goods: u64 = order
            .items
            .iter()
            .map(|i| u64::from(i.quantity).saturating_mul(i.unit_price_cents))
            .sum();
        let shipping = cx
            .output("calculate_shipping", "shipping_cents")
            .and_then(Value::as_i64)
            .ok_or_else(|| HandlerError::permanent("no shipping quote from the step before"))?;
        let amount = i64::try_from(goods)
            .ok()
            .and_then(|g| g.checked_add(shipping))
            .ok_or_else(|| HandlerError::permanent("order total out of range"))?;
        // A real provider call would pass cx.idempotency_key, the same on
        // every try of this step.
        Ok(StepResult {
            output: object(json!({ "amount_cents": amount })),
            effects: vec![Effect::Put {
                record: RecordRef::new("CHARGE", &order.order_id),
                fields: object(json!({
                    "amount_cents": amount, "status": "captured", "idempotency_key": cx.idempotency_key,
                })),
            }],
        })
    })
}

fn send_confirmation<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let order: OrderCreated = data(cx)?;
        let amount = cx
            .output("charge_payment", "amount_cents")
            .cloned()
            .unwrap_or(Value::Null);
        Ok(StepResult {
            output: Map::new(),
            effects: vec![Effect::Put {
                record: RecordRef::new("OUTBOX", format!("{}-confirmation", order.order_id)),
                fields: object(json!({
                    "to": order.customer_email, "template": "order_confirmation", "amount_cents": amount,
                })),
            }],
        })
    })
}

// ------------------------------------------------------------------- users

/// The data of a `user.created` event.
#[derive(Debug, Deserialize)]
pub struct UserCreated {
    /// The new user's id.
    pub user_id: String,
    /// Where the welcome mail goes.
    pub email: String,
    /// The plan signed up for, if any.
    #[serde(default)]
    pub plan: Option<String>,
}

/// The user workflow. Records it writes: `OUTBOX/<user>-welcome`,
/// `SETTINGS/<user>`, `ANALYTICS/registrations-<day>.count`, `ROLE/<user>`.
pub fn user_onboarding(store: Arc<DynamoStateStore>) -> Workflow<DynamoStateStore> {
    Workflow::new("user_onboarding", store, RUN_RETENTION)
        .step_fn("send_welcome_email", send_welcome_email)
        .step_fn("create_default_settings", create_default_settings)
        .step_fn("track_registration", track_registration)
        .step_fn("assign_default_role", assign_default_role)
}

fn put_one(record: RecordRef, fields: Value) -> StepResult {
    StepResult {
        output: Map::new(),
        effects: vec![Effect::Put {
            record,
            fields: object(fields),
        }],
    }
}

fn send_welcome_email<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let u: UserCreated = data(cx)?;
        Ok(put_one(
            RecordRef::new("OUTBOX", format!("{}-welcome", u.user_id)),
            json!({ "to": u.email, "template": "welcome" }),
        ))
    })
}

fn create_default_settings<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let u: UserCreated = data(cx)?;
        Ok(put_one(
            RecordRef::new("SETTINGS", &u.user_id),
            json!({ "theme": "system", "notifications": true, "plan": u.plan.unwrap_or_else(|| "free".into()) }),
        ))
    })
}

fn track_registration<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let day = cx.event.timestamp.date();
        Ok(StepResult {
            output: Map::new(),
            effects: vec![Effect::Add {
                record: RecordRef::new("ANALYTICS", format!("registrations-{day}")),
                field: "count".into(),
                delta: 1,
            }],
        })
    })
}

fn assign_default_role<'a>(cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
    Box::pin(async move {
        let u: UserCreated = data(cx)?;
        Ok(put_one(RecordRef::new("ROLE", &u.user_id), json!({ "role": "member" })))
    })
}
