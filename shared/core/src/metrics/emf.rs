//! The EMF lines themselves: counting one invocation's values and writing
//! (and, for tests and the local runner, reading back) the JSON lines.

use super::{FN_DIMS, MetricDef, NAMESPACE, QUEUE_DIMS, Unit};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A metric name and, for queue metrics, the `Queue` value.
pub(super) type SeriesKey = (&'static str, Option<String>);

/// An EMF line as CloudWatch reads it: namespace, dimensions (name ->
/// value), values (metric name -> values).
pub type ParsedEmf = (String, BTreeMap<String, String>, BTreeMap<String, Vec<f64>>);

/// The metrics of one invocation, written as EMF lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    stage: String,
    function: String,
    /// Per metric (and `Queue` value, for queue metrics): the values.
    pub(super) values: BTreeMap<SeriesKey, (MetricDef, Vec<f64>)>,
}

impl Metrics {
    /// Empty metrics of `function` in `stage`.
    pub fn new(stage: impl Into<String>, function: impl Into<String>) -> Self {
        Self {
            stage: stage.into(),
            function: function.into(),
            values: BTreeMap::new(),
        }
    }

    /// Adds `n` to a count.
    pub fn count(&mut self, def: MetricDef, n: u64) {
        self.put(def, None, n as f64);
    }

    /// Records one value (a latency).
    pub fn record(&mut self, def: MetricDef, value: f64) {
        self.put(def, None, value);
    }

    /// Records a queue metric for `queue` (a logical name, e.g. `DeliveriesDLQ`).
    pub fn queue(&mut self, def: MetricDef, queue: &str, value: u64) {
        self.put(def, Some(queue.to_string()), value as f64);
    }

    fn put(&mut self, def: MetricDef, queue: Option<String>, v: f64) {
        let entry = self.values.entry((def.name, queue)).or_insert((def, Vec::new()));
        if def.unit == Unit::Count && entry.0.dimensions == FN_DIMS && !entry.1.is_empty() {
            entry.1[0] += v;
        } else {
            entry.1.push(v);
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The EMF lines: one per `Queue` value (CloudWatch takes one set of
    /// dimension values per line), the function-level metrics together.
    /// `now_ms` is the timestamp (milliseconds since the epoch).
    pub fn emf_lines(&self, now_ms: i64) -> Vec<String> {
        let mut groups: BTreeMap<Option<&str>, Vec<(&MetricDef, &Vec<f64>)>> = BTreeMap::new();
        for ((_, queue), (def, vals)) in &self.values {
            groups.entry(queue.as_deref()).or_default().push((def, vals));
        }
        groups
            .into_iter()
            .map(|(queue, metrics)| {
                let dims: Vec<&str> = if queue.is_some() { QUEUE_DIMS.to_vec() } else { FN_DIMS.to_vec() };
                let mut line = Map::new();
                line.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": now_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": [dims],
                            "Metrics": metrics.iter().map(|(d, _)| json!({"Name": d.name, "Unit": d.unit.as_str()})).collect::<Vec<_>>(),
                        }],
                    }),
                );
                line.insert("Stage".into(), Value::String(self.stage.clone()));
                line.insert("Function".into(), Value::String(self.function.clone()));
                if let Some(q) = queue {
                    line.insert("Queue".into(), Value::String(q.to_string()));
                }
                for (d, vals) in metrics {
                    let v = if vals.len() == 1 { json!(vals[0]) } else { json!(vals) };
                    line.insert(d.name.into(), v);
                }
                Value::Object(line).to_string()
            })
            .collect()
    }

    /// Writes the EMF lines to stdout (where Lambda's log capture reads
    /// them) and clears the values.
    pub fn flush(&mut self) {
        if self.values.is_empty() {
            return;
        }
        let now = crate::time_util::now_utc();
        let ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        for line in self.emf_lines(ms) {
            println!("{line}");
        }
        self.values.clear();
    }
}

/// The metrics of an EMF line, as CloudWatch would extract them:
/// `(namespace, dimensions name -> value, metric name -> values)`. For the
/// tests (and anyone checking a log line).
pub fn parse_emf(line: &str) -> Option<ParsedEmf> {
    let v: Value = serde_json::from_str(line).ok()?;
    let cw = v.pointer("/_aws/CloudWatchMetrics/0")?;
    let ns = cw.get("Namespace")?.as_str()?.to_string();
    let dims = cw
        .pointer("/Dimensions/0")?
        .as_array()?
        .iter()
        .filter_map(|d| d.as_str())
        .map(|d| Some((d.to_string(), v.get(d)?.as_str()?.to_string())))
        .collect::<Option<BTreeMap<_, _>>>()?;
    let mut values = BTreeMap::new();
    for m in cw.get("Metrics")?.as_array()? {
        let name = m.get("Name")?.as_str()?;
        let vals = match v.get(name)? {
            Value::Number(n) => vec![n.as_f64()?],
            Value::Array(a) => a.iter().filter_map(Value::as_f64).collect(),
            _ => return None,
        };
        values.insert(name.to_string(), vals);
    }
    Some((ns, dims, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::m;

    #[test]
    fn one_line_per_dimension_set_with_counts_summed() {
        let mut m = Metrics::new("dev", "delivery");
        m.count(m::DeliveriesSucceeded, 2);
        m.count(m::DeliveriesSucceeded, 1);
        m.record(m::AttemptLatency, 12.0);
        m.record(m::AttemptLatency, 30.0);
        m.count(m::DeliveriesFailed, 0);
        let lines = m.emf_lines(1_700_000_000_000);
        assert_eq!(lines.len(), 1);
        let (ns, dims, values) = parse_emf(&lines[0]).unwrap();
        assert_eq!(ns, "Switchyard");
        assert_eq!(
            dims,
            BTreeMap::from([("Function".into(), "delivery".into()), ("Stage".into(), "dev".into())])
        );
        assert_eq!(values["DeliveriesSucceeded"], vec![3.0]);
        assert_eq!(values["AttemptLatency"], vec![12.0, 30.0]);
        assert_eq!(values["DeliveriesFailed"], vec![0.0]);
        let raw: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(raw["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(
            raw["_aws"]["CloudWatchMetrics"][0]["Metrics"][0],
            json!({"Name": "AttemptLatency", "Unit": "Milliseconds"})
        );
    }

    #[test]
    fn queue_metrics_get_a_line_per_queue() {
        let mut m = Metrics::new("prod", "monitor");
        m.queue(m::QueueVisible, "FanoutQueue", 4);
        m.queue(m::QueueVisible, "FanoutDLQ", 1);
        m.queue(m::QueueInFlight, "FanoutQueue", 2);
        m.count(m::EndpointsCircuitOpen, 3);
        let lines = m.emf_lines(0);
        assert_eq!(lines.len(), 3);
        let parsed: Vec<_> = lines.iter().map(|l| parse_emf(l).unwrap()).collect();
        let fanout = parsed
            .iter()
            .find(|p| p.1.get("Queue").map(String::as_str) == Some("FanoutQueue"))
            .unwrap();
        assert_eq!(fanout.2["QueueVisible"], vec![4.0]);
        assert_eq!(fanout.2["QueueInFlight"], vec![2.0]);
        let plain = parsed.iter().find(|p| !p.1.contains_key("Queue")).unwrap();
        assert_eq!(plain.2["EndpointsCircuitOpen"], vec![3.0]);
    }
}
