//! CloudFormation's intrinsic functions, evaluated the way a deployment
//! would, against the local stack.
//!
//! Handles what templates use for wiring: `Ref` (parameters, pseudo
//! parameters, resources), `Fn::GetAtt`, `Fn::Sub` (both forms),
//! `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::If` and the condition
//! functions (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`),
//! and `AWS::NoValue`. Anything else (`Fn::ImportValue`, `Fn::FindInMap`
//! without a mapping, ...) is an error naming the function: the local stack
//! never guesses.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// What evaluating a template's parameters, conditions and intrinsic
/// functions fails with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An override names a parameter the template does not declare.
    #[error("parameter override {0}: the template has no such parameter")]
    UnknownOverride(String),
    /// A parameter with neither an override nor a `Default`.
    #[error("parameter {0} has no Default: give it a value")]
    NoDefault(String),
    /// Conditions that never settle, with the first one's reason.
    #[error("conditions {names:?} cannot be evaluated: {source}")]
    Conditions {
        /// The conditions left.
        names: Vec<String>,
        /// Why the first of them fails.
        source: Box<Error>,
    },
    /// A condition name the template does not declare.
    #[error("unknown condition {0}")]
    UnknownCondition(String),
    /// `Ref` to something that is neither a parameter nor a resource known
    /// so far.
    #[error("Ref {0}: no such parameter or resource (yet)")]
    NoSuchRef(String),
    /// `Fn::GetAtt` of a resource not known so far.
    #[error("Fn::GetAtt {resource}.{attribute}: no such resource (yet)")]
    NoSuchResource {
        /// The logical id.
        resource: String,
        /// The attribute asked for.
        attribute: String,
    },
    /// `Fn::GetAtt` of an attribute the local stack does not give.
    #[error("Fn::GetAtt {resource}.{attribute}: the local stack has no such attribute")]
    NoSuchAttribute {
        /// The logical id.
        resource: String,
        /// The attribute asked for.
        attribute: String,
    },
    /// An intrinsic function the local stack does not evaluate.
    #[error("the intrinsic function {0} is not supported locally")]
    Unsupported(String),
    /// An intrinsic function or condition written wrongly (what it takes,
    /// and what it got).
    #[error("{0}")]
    Malformed(String),
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::Malformed(message.to_string())
    }
}

/// The account id moto uses.
pub const ACCOUNT_ID: &str = "123456789012";

/// What `Ref` and `Fn::GetAtt` give for one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// What `Ref` gives (a queue's URL, a table's name, ...).
    pub reference: String,
    /// What `Fn::GetAtt` gives, by attribute name (`Arn`, `QueueName`, ...).
    pub get_att: HashMap<String, String>,
}

impl Attrs {
    /// A resource whose `Ref` is `reference`, with no attributes yet.
    pub fn new(reference: impl Into<String>) -> Self {
        Self {
            reference: reference.into(),
            get_att: HashMap::new(),
        }
    }

    /// The same, with attribute `name` set to `value`.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.get_att.insert(name.to_string(), value.into());
        self
    }
}

/// The evaluation context: the stack's name, region, parameters and the
/// resources known so far.
#[derive(Debug, Clone)]
pub struct Cfn {
    /// The stack's name (`AWS::StackName`).
    pub stack_name: String,
    /// The stack's region (`AWS::Region`).
    pub region: String,
    params: HashMap<String, Value>,
    conditions: HashMap<String, bool>,
    /// What each resource created so far gives, by logical id.
    pub resources: HashMap<String, Attrs>,
}

/// What resolving a value gives: a value, or nothing (`AWS::NoValue`).
type Resolved = Option<Value>;

impl Cfn {
    /// A context for `template` with parameter `overrides` (name -> value);
    /// parameters without an override take their `Default`, and one with
    /// neither is an error, as in CloudFormation.
    pub fn new(
        template: &Value,
        stack_name: &str,
        region: &str,
        overrides: &HashMap<String, String>,
    ) -> Result<Self, Error> {
        let mut params = HashMap::new();
        let declared = template.get("Parameters").and_then(Value::as_object);
        for name in overrides.keys() {
            if !declared.is_some_and(|d| d.contains_key(name)) {
                return Err(Error::UnknownOverride(name.clone()));
            }
        }
        for (name, decl) in declared.into_iter().flatten() {
            let value = match (overrides.get(name), decl.get("Default")) {
                (Some(v), _) => Value::String(v.clone()),
                (None, Some(Value::String(s))) => Value::String(s.clone()),
                (None, Some(Value::Number(n))) => Value::String(n.to_string()),
                (None, Some(other)) => Value::String(other.to_string()),
                (None, None) => return Err(Error::NoDefault(name.clone())),
            };
            let kind = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
            let value = if kind == "CommaDelimitedList" || kind.starts_with("List<") {
                match value {
                    Value::String(s) => Value::Array(s.split(',').map(|p| Value::String(p.trim().into())).collect()),
                    v => v,
                }
            } else {
                value
            };
            params.insert(name.clone(), value);
        }
        let mut cfn = Self {
            stack_name: stack_name.to_string(),
            region: region.to_string(),
            params,
            conditions: HashMap::new(),
            resources: HashMap::new(),
        };
        // Conditions may refer to each other; evaluate until all settle.
        let conditions = template
            .get("Conditions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut pending: Vec<(String, Value)> = conditions.into_iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut still = Vec::new();
            for (name, expr) in pending {
                match cfn.condition(&expr) {
                    Ok(v) => {
                        cfn.conditions.insert(name, v);
                    }
                    Err(_) => still.push((name, expr)),
                }
            }
            if still.len() == before {
                let names: Vec<String> = still.iter().map(|(n, _)| n.clone()).collect();
                let why = match cfn.condition(&still[0].1) {
                    Err(e) => e,
                    Ok(_) => Error::Malformed("their values depend on each other".into()),
                };
                return Err(Error::Conditions {
                    names,
                    source: Box::new(why),
                });
            }
            pending = still;
        }
        Ok(cfn)
    }

    /// The value of a parameter, as a string.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Whether the named condition holds.
    pub fn condition_named(&self, name: &str) -> Result<bool, Error> {
        self.conditions
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownCondition(name.to_string()))
    }

    /// An ARN of `service` in this region and moto's account (`rest`: `queue-name`, `table/name`, ...).
    pub fn arn(&self, service: &str, rest: &str) -> String {
        format!("arn:aws:{service}:{}:{ACCOUNT_ID}:{rest}", self.region)
    }

    /// `value` with every intrinsic function evaluated; `AWS::NoValue`
    /// removes the key or element it stands for.
    pub fn resolve(&self, value: &Value) -> Result<Value, Error> {
        Ok(self.eval(value)?.unwrap_or(Value::Null))
    }

    /// `value` resolved to a string (numbers and booleans as text).
    pub fn resolve_string(&self, value: &Value) -> Result<String, Error> {
        match self.resolve(value)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(Error::Malformed(format!("expected a string, got {other}"))),
        }
    }

    /// The logical ids of the resources `value` refers to (by `Ref`,
    /// `Fn::GetAtt` or `${...}` in `Fn::Sub`), parameters and pseudo
    /// parameters left out.
    pub fn references(&self, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(m)
                if m.len() == 1
                    && let Some((k, v)) = m.iter().next() =>
            {
                match (k.as_str(), v) {
                    ("Ref", Value::String(name)) if !self.params.contains_key(name) && !name.starts_with("AWS::") => {
                        out.push(name.clone())
                    }
                    ("Fn::GetAtt", Value::Array(a)) => {
                        if let Some(Value::String(name)) = a.first() {
                            out.push(name.clone())
                        }
                    }
                    ("Fn::GetAtt", Value::String(s)) => {
                        if let Some((name, _)) = s.split_once('.') {
                            out.push(name.to_string())
                        }
                    }
                    ("Fn::Sub", sub) => {
                        let (text, vars) = match sub {
                            Value::String(s) => (Some(s.as_str()), None),
                            Value::Array(a) => (a.first().and_then(Value::as_str), a.get(1).and_then(Value::as_object)),
                            _ => (None, None),
                        };
                        if let Some(vars) = vars {
                            for v in vars.values() {
                                self.references(v, out);
                            }
                        }
                        for var in text.map(sub_vars).unwrap_or_default() {
                            let name = var.split('.').next().unwrap_or(&var).to_string();
                            let local = vars.is_some_and(|v| v.contains_key(&var));
                            if !local && !self.params.contains_key(&name) && !name.starts_with("AWS::") {
                                out.push(name);
                            }
                        }
                    }
                    _ => self.references(v, out),
                }
            }
            Value::Object(m) => m.values().for_each(|v| self.references(v, out)),
            Value::Array(a) => a.iter().for_each(|v| self.references(v, out)),
            _ => {}
        }
    }

    fn eval(&self, value: &Value) -> Result<Resolved, Error> {
        match value {
            Value::Object(m)
                if m.len() == 1
                    && let Some((k, v)) = m.iter().next() =>
            {
                if k == "Ref" || k.starts_with("Fn::") || k == "Condition" {
                    return self.function(k, v);
                }
                let mut out = Map::new();
                if let Some(r) = self.eval(v)? {
                    out.insert(k.clone(), r);
                }
                Ok(Some(Value::Object(out)))
            }
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    if let Some(r) = self.eval(v)? {
                        out.insert(k.clone(), r);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for v in a {
                    if let Some(r) = self.eval(v)? {
                        out.push(r);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn function(&self, name: &str, arg: &Value) -> Result<Resolved, Error> {
        match name {
            "Ref" => {
                let target = arg
                    .as_str()
                    .ok_or_else(|| Error::Malformed(format!("Ref to a non-string: {arg}")))?;
                self.reference(target)
            }
            "Fn::GetAtt" => {
                let (res, att) = match arg {
                    Value::String(s) => s
                        .split_once('.')
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .ok_or_else(|| Error::Malformed(format!("Fn::GetAtt {s}: expected Resource.Attribute")))?,
                    Value::Array(a) if a.len() == 2 => (
                        a[0].as_str().unwrap_or_default().to_string(),
                        self.resolve_string(&a[1])?,
                    ),
                    other => return Err(Error::Malformed(format!("Fn::GetAtt with {other}"))),
                };
                self.get_att(&res, &att).map(|s| Some(Value::String(s)))
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.as_str(), Map::new()),
                    Value::Array(a) if a.len() == 2 => {
                        let text = a[0].as_str().ok_or("Fn::Sub: the first element must be a string")?;
                        let vars = match self.resolve(&a[1])? {
                            Value::Object(m) => m,
                            other => {
                                return Err(Error::Malformed(format!(
                                    "Fn::Sub: variables must be a map, got {other}"
                                )));
                            }
                        };
                        (text, vars)
                    }
                    other => return Err(Error::Malformed(format!("Fn::Sub with {other}"))),
                };
                self.sub(text, &vars).map(|s| Some(Value::String(s)))
            }
            "Fn::Join" => {
                let a = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or("Fn::Join takes [delimiter, list]")?;
                let delim = a[0].as_str().ok_or("Fn::Join: the delimiter must be a string")?;
                let parts = match self.resolve(&a[1])? {
                    Value::Array(p) => p,
                    other => return Err(Error::Malformed(format!("Fn::Join: expected a list, got {other}"))),
                };
                let parts: Result<Vec<String>, Error> = parts.iter().map(|p| self.resolve_string(p)).collect();
                Ok(Some(Value::String(parts?.join(delim))))
            }
            "Fn::Select" => {
                let a = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or("Fn::Select takes [index, list]")?;
                let index: usize = self
                    .resolve_string(&a[0])?
                    .parse()
                    .map_err(|_| "Fn::Select: the index must be a number")?;
                match self.resolve(&a[1])? {
                    Value::Array(items) => items
                        .get(index)
                        .cloned()
                        .map(Some)
                        .ok_or_else(|| Error::Malformed(format!("Fn::Select: no element {index}"))),
                    other => Err(Error::Malformed(format!("Fn::Select: expected a list, got {other}"))),
                }
            }
            "Fn::Split" => {
                let a = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or("Fn::Split takes [delimiter, string]")?;
                let delim = a[0].as_str().ok_or("Fn::Split: the delimiter must be a string")?;
                let text = self.resolve_string(&a[1])?;
                Ok(Some(Value::Array(
                    text.split(delim).map(|s| Value::String(s.to_string())).collect(),
                )))
            }
            "Fn::If" => {
                let a = arg
                    .as_array()
                    .filter(|a| a.len() == 3)
                    .ok_or("Fn::If takes [condition, then, else]")?;
                let cond = a[0].as_str().ok_or("Fn::If: the condition must be a name")?;
                let branch = if self.condition_named(cond)? { &a[1] } else { &a[2] };
                self.eval(branch)
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let mut m = Map::new();
                m.insert(name.to_string(), arg.clone());
                self.condition(&Value::Object(m)).map(|b| Some(Value::Bool(b)))
            }
            other => Err(Error::Unsupported(other.to_string())),
        }
    }

    fn reference(&self, target: &str) -> Result<Resolved, Error> {
        if let Some(v) = self.params.get(target) {
            return Ok(Some(v.clone()));
        }
        let pseudo = match target {
            "AWS::NoValue" => return Ok(None),
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => ACCOUNT_ID.to_string(),
            "AWS::Partition" => "aws".to_string(),
            "AWS::URLSuffix" => "amazonaws.com".to_string(),
            "AWS::StackId" => self.arn("cloudformation", &format!("stack/{}/local", self.stack_name)),
            "AWS::NotificationARNs" => return Ok(Some(Value::Array(Vec::new()))),
            _ => match self.resources.get(target) {
                Some(a) => a.reference.clone(),
                None => return Err(Error::NoSuchRef(target.to_string())),
            },
        };
        Ok(Some(Value::String(pseudo)))
    }

    fn get_att(&self, resource: &str, att: &str) -> Result<String, Error> {
        let attrs = self.resources.get(resource).ok_or_else(|| Error::NoSuchResource {
            resource: resource.to_string(),
            attribute: att.to_string(),
        })?;
        attrs.get_att.get(att).cloned().ok_or_else(|| Error::NoSuchAttribute {
            resource: resource.to_string(),
            attribute: att.to_string(),
        })
    }

    fn sub(&self, text: &str, vars: &Map<String, Value>) -> Result<String, Error> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| Error::Malformed(format!("Fn::Sub: unclosed ${{ in {text:?}")))?;
            let var = &after[..end];
            if let Some(literal) = var.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(var) {
                out.push_str(&self.resolve_string(v)?);
            } else if let Some((res, att)) = var.split_once('.').filter(|_| !var.starts_with("AWS::")) {
                out.push_str(&self.get_att(res, att)?);
            } else {
                match self.reference(var)? {
                    Some(Value::String(s)) => out.push_str(&s),
                    Some(other) => out.push_str(&other.to_string()),
                    None => {}
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn condition(&self, expr: &Value) -> Result<bool, Error> {
        let (k, v) = expr
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
            .ok_or_else(|| Error::Malformed(format!("not a condition: {expr}")))?;
        let list = || {
            v.as_array()
                .ok_or_else(|| Error::Malformed(format!("{k} takes a list")))
        };
        match k.as_str() {
            "Fn::Equals" => {
                let a = list()?;
                if a.len() != 2 {
                    return Err(Error::Malformed("Fn::Equals takes two values".into()));
                }
                Ok(self.resolve(&a[0])? == self.resolve(&a[1])?)
            }
            "Fn::Not" => Ok(!self.condition(list()?.first().ok_or("Fn::Not takes one condition")?)?),
            "Fn::And" => list()?.iter().try_fold(true, |acc, c| Ok(acc & self.condition(c)?)),
            "Fn::Or" => list()?.iter().try_fold(false, |acc, c| Ok(acc | self.condition(c)?)),
            "Condition" => self.condition_named(v.as_str().ok_or("Condition takes a name")?),
            other => Err(Error::Malformed(format!("{other} is not a condition function"))),
        }
    }
}

/// The `${...}` variables of an `Fn::Sub` string (not the `${!...}` literals).
fn sub_vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let var = &after[..end];
        if !var.starts_with('!') {
            out.push(var.to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfn() -> Cfn {
        let template = json!({
            "Parameters": {
                "Stage": {"Type": "String", "Default": "dev"},
                "Size": {"Type": "Number", "Default": 5},
                "Names": {"Type": "CommaDelimitedList", "Default": "a, b"}
            },
            "Conditions": {
                "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
                "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]}
            }
        });
        let mut c = Cfn::new(&template, "stk", "us-east-1", &HashMap::new()).unwrap();
        c.resources.insert(
            "Q".into(),
            Attrs::new("http://q").with("Arn", "arn:aws:sqs:us-east-1:123456789012:stk-q"),
        );
        c
    }

    #[test]
    fn refs_subs_and_getatts_resolve() {
        let c = cfn();
        let v = json!({
            "a": {"Ref": "Q"},
            "b": {"Fn::GetAtt": ["Q", "Arn"]},
            "c": {"Fn::Sub": "${AWS::StackName}-x-${Q.Arn}-${!Literal}-${Size}"},
            "d": {"Fn::Sub": ["${X}/${Q}", {"X": {"Ref": "Stage"}}]},
            "e": {"Fn::Join": [",", [{"Ref": "Stage"}, "z"]]},
            "f": {"Fn::Select": [1, {"Ref": "Names"}]},
            "g": {"Fn::If": ["IsProd", "yes", {"Ref": "AWS::NoValue"}]},
            "h": [{"Fn::If": ["NotProd", 1, 2]}, {"Ref": "AWS::NoValue"}],
            "i": {"Fn::GetAtt": "Q.Arn"}
        });
        assert_eq!(
            c.resolve(&v).unwrap(),
            json!({
                "a": "http://q",
                "b": "arn:aws:sqs:us-east-1:123456789012:stk-q",
                "c": "stk-x-arn:aws:sqs:us-east-1:123456789012:stk-q-${Literal}-5",
                "d": "dev/http://q",
                "e": "dev,z",
                "f": "b",
                "h": [1],
                "i": "arn:aws:sqs:us-east-1:123456789012:stk-q"
            })
        );
    }

    #[test]
    fn overrides_win_and_unknown_overrides_are_refused() {
        let template = json!({"Parameters": {"Stage": {"Type": "String", "Default": "dev"}}});
        let o = HashMap::from([("Stage".to_string(), "prod".to_string())]);
        assert_eq!(
            Cfn::new(&template, "s", "r", &o).unwrap().param("Stage").as_deref(),
            Some("prod")
        );
        let bad = HashMap::from([("Nope".to_string(), "1".to_string())]);
        assert_eq!(
            Cfn::new(&template, "s", "r", &bad).unwrap_err(),
            Error::UnknownOverride("Nope".into())
        );
        let no_default = json!({"Parameters": {"Key": {"Type": "String"}}});
        assert_eq!(
            Cfn::new(&no_default, "s", "r", &HashMap::new()).unwrap_err(),
            Error::NoDefault("Key".into())
        );
    }

    #[test]
    fn unknown_things_are_errors_not_guesses() {
        let c = cfn();
        assert_eq!(
            c.resolve(&json!({"Ref": "Missing"})).unwrap_err(),
            Error::NoSuchRef("Missing".into())
        );
        let e = c.resolve(&json!({"Fn::GetAtt": ["Q", "Nope"]})).unwrap_err();
        assert!(matches!(e, Error::NoSuchAttribute { .. }));
        assert!(e.to_string().contains("Q.Nope"), "{e}");
        let e = c.resolve(&json!({"Fn::ImportValue": "x"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the intrinsic function Fn::ImportValue is not supported locally"
        );
        let e = c.resolve(&json!({"Fn::Join": [","]})).unwrap_err();
        assert_eq!(e, Error::Malformed("Fn::Join takes [delimiter, list]".into()));
    }

    #[test]
    fn conditions_that_never_settle_name_themselves_and_the_reason() {
        let template = json!({"Conditions": {
            "A": {"Condition": "B"},
            "B": {"Fn::Equals": [{"Ref": "Missing"}, "x"]}
        }});
        let e = Cfn::new(&template, "s", "r", &HashMap::new()).unwrap_err();
        let Error::Conditions { names, source } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(names.len(), 2);
        assert!(e.to_string().starts_with("conditions "), "{e}");
        assert!(
            matches!(**source, Error::UnknownCondition(_) | Error::NoSuchRef(_)),
            "{source}"
        );
    }

    #[test]
    fn references_lists_resources_only() {
        let c = cfn();
        let mut out = Vec::new();
        c.references(
            &json!({"a": {"Ref": "Stage"}, "b": {"Fn::Sub": "${Other.Arn}-${AWS::Region}-${Size}"}, "c": {"Ref": "Q"},
                    "d": {"Fn::Sub": ["${V}", {"V": {"Fn::GetAtt": ["T", "Arn"]}}]}}),
            &mut out,
        );
        out.sort();
        assert_eq!(out, vec!["Other", "Q", "T"]);
    }
}
