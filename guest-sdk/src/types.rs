//! Conveniences on the generated WIT types, so primitives read naturally.

use crate::{Context, Error, ErrorKind, Hints, Metadata, Span, Value};

impl Metadata {
    /// Describes a primitive: no title, no schemas, no hints (each unknown) until set.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Metadata {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            title: None,
            input_schema: None,
            output_schema: None,
            hints: Hints {
                read_only: None,
                destructive: None,
                idempotent: None,
                open_world: None,
            },
        }
    }

    /// A human-readable name for tool listings (at most 128 bytes).
    #[must_use]
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.to_owned());
        self
    }

    /// The JSON Schema (text) of the input; its root must be `"type": "object"`.
    /// [`JsonPrimitive`](crate::JsonPrimitive) derives it from `Input` when not set.
    #[must_use]
    pub fn input_schema(mut self, schema: &str) -> Self {
        self.input_schema = Some(schema.to_owned());
        self
    }

    /// The JSON Schema (text) of the output; derived from `Output` when not set.
    #[must_use]
    pub fn output_schema(mut self, schema: &str) -> Self {
        self.output_schema = Some(schema.to_owned());
        self
    }

    /// The primitive changes nothing outside its output.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.hints.read_only = Some(true);
        self.hints.destructive = Some(false);
        self
    }

    /// The primitive may destroy or overwrite state outside itself.
    #[must_use]
    pub fn destructive(mut self) -> Self {
        self.hints.read_only = Some(false);
        self.hints.destructive = Some(true);
        self
    }

    /// Calling it again with the same input has no further effect.
    #[must_use]
    pub fn idempotent(mut self) -> Self {
        self.hints.idempotent = Some(true);
        self
    }

    /// Whether it reaches an open world of outside entities (the web) or a closed one.
    #[must_use]
    pub fn open_world(mut self, open: bool) -> Self {
        self.hints.open_world = Some(open);
        self
    }
}

impl Context {
    /// The value of the workflow data entry `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl Error {
    /// A failure of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>, retryable: bool) -> Self {
        Error {
            kind,
            message: message.into(),
            retryable,
        }
    }

    /// The input was rejected; say what is wrong and how to fix it.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message, false)
    }

    /// Something the input names does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message, false)
    }

    /// A dependency is unavailable; the call may be retried.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message, true)
    }

    /// The primitive gave up waiting within its own budget; the call may be retried.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message, true)
    }

    /// A bug or broken invariant in the primitive.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message, false)
    }
}

impl ErrorKind {
    /// The WIT name of the kind, e.g. `invalid-input`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
        }
    }
}

impl Span {
    /// Sets an attribute, converting the value.
    pub fn attr(&self, key: &str, value: impl Into<Value>) {
        self.set_attribute(key, &value.into());
    }

    /// Records an event without attributes.
    pub fn event(&self, name: &str) {
        self.add_event(name, &[]);
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Str(v.clone())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
int_value!(i8, i16, i32, i64, u8, u16, u32);

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
