//! The macros a primitive uses: `export!`, `attributes!` and the logging shorthands.

/// Exports a type implementing [`Primitive`](crate::Primitive) as this component's primitive.
///
/// Use it once per crate, at the top level: `tta_guest::export!(MyPrimitive);`.
#[macro_export]
macro_rules! export {
    ($ty:ident) => {
        const _: () = {
            impl $crate::bindings::exports::tta::primitives::primitive::Guest for $ty {
                fn describe() -> $crate::Metadata {
                    <$ty as $crate::Primitive>::describe()
                }

                fn execute(
                    ctx: $crate::Context,
                    input: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::Error> {
                    <$ty as $crate::Primitive>::execute(&ctx, &input)
                }
            }
    $crate::bindings::__export_primitive_plugin!($ty with_types_in $crate::bindings);
        };
    };
}

/// Builds [`Attributes`](crate::Attributes) from `key => value` pairs.
///
/// ```
/// let attrs = tta_guest::attributes!["model" => "small", "tokens" => 42];
/// assert_eq!(attrs.len(), 2);
/// ```
#[macro_export]
macro_rules! attributes {
    ($($key:expr => $value:expr),* $(,)?) => {
        ::std::vec![$((::std::string::String::from($key), $crate::Value::from($value))),*]
    };
}

/// Logs at a level, with optional `key = value` fields before a `;` and a format string.
///
/// `tta_guest::log_at!(tta_guest::Level::Info, words = 3; "counted {}", "x")`.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $($key:ident = $value:expr),+ ; $($arg:tt)+) => {
        $crate::log(
            $level,
            &::std::format!($($arg)+),
            &[$((::std::string::String::from(::std::stringify!($key)), $crate::Value::from($value))),+],
        )
    };
    ($level:expr, $($arg:tt)+) => {
        $crate::log($level, &::std::format!($($arg)+), &[])
    };
}

/// Logs at `trace` level; see [`log_at!`].
#[macro_export]
macro_rules! trace { ($($t:tt)+) => { $crate::log_at!($crate::Level::Trace, $($t)+) }; }
/// Logs at `debug` level; see [`log_at!`].
#[macro_export]
macro_rules! debug { ($($t:tt)+) => { $crate::log_at!($crate::Level::Debug, $($t)+) }; }
/// Logs at `info` level: `info!(words = n; "counted {n} words")`; see [`log_at!`].
#[macro_export]
macro_rules! info { ($($t:tt)+) => { $crate::log_at!($crate::Level::Info, $($t)+) }; }
/// Logs at `warn` level; see [`log_at!`].
#[macro_export]
macro_rules! warn { ($($t:tt)+) => { $crate::log_at!($crate::Level::Warn, $($t)+) }; }
/// Logs at `error` level; see [`log_at!`].
#[macro_export]
macro_rules! error { ($($t:tt)+) => { $crate::log_at!($crate::Level::Error, $($t)+) }; }
