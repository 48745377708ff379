//! Hostile guests: each is stopped with its own error, and the host carries on.

use crate::{call, config, fixture, host_with, plugin};
use tta_host::bindings::ErrorKind;
use tta_host::{CallError, Host, HostConfig};

async fn hostile_host(config: HostConfig) -> Host {
    host_with(
        config,
        &[
            plugin("echo"),
            fixture("spin-forever"),
            fixture("memory-hog"),
            fixture("trap"),
            fixture("deep-recursion"),
            fixture("huge-output"),
            fixture("invoke-self"),
            fixture("wasi-escape"),
        ],
    )
    .await
}

async fn still_healthy(host: &Host) {
    let outcome = call(host, "echo", "still here").await;
    assert_eq!(outcome.output.expect("echo after a hostile call"), b"still here");
}

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel() {
    let mut config = config();
    config.limits.fuel = 50_000_000;
    let host = hostile_host(config).await;
    let outcome = call(&host, "spin-forever", "").await;
    assert!(
        matches!(outcome.output, Err(CallError::OutOfFuel { limit: 50_000_000 })),
        "{:?}",
        outcome.output
    );
    assert_eq!(outcome.report.stats.fuel_consumed, 50_000_000);
    still_healthy(&host).await;
}

#[tokio::test]
async fn infinite_loop_with_ample_fuel_is_stopped_at_the_deadline() {
    let mut config = config();
    config.limits.fuel = u64::MAX / 4;
    config.limits.timeout_ms = 200;
    let host = hostile_host(config).await;
    let outcome = call(&host, "spin-forever", "").await;
    let Err(CallError::DeadlineExceeded { limit }) = outcome.output else {
        panic!("expected DeadlineExceeded, got {:?}", outcome.output);
    };
    assert_eq!(limit.as_millis(), 200);
    assert_eq!(
        outcome.report.error.as_ref().map(CallError::error_type),
        Some("deadline_exceeded")
    );
    still_healthy(&host).await;
}

#[tokio::test]
async fn a_guest_sleeping_in_wasi_is_stopped_at_the_deadline() {
    let mut config = config();
    config.limits.timeout_ms = 200;
    let host = hostile_host(config).await;
    // Epochs cannot interrupt a guest waiting in the host; the bound on the wait must. The
    // outer timeout only keeps a regression from hanging the suite.
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        call(&host, "wasi-escape", "sleep 3600"),
    )
    .await
    .expect("the sleeping call returned long before its hour");
    let Err(CallError::DeadlineExceeded { limit }) = outcome.output else {
        panic!("expected DeadlineExceeded, got {:?}", outcome.output);
    };
    assert_eq!(limit.as_millis(), 200);
    still_healthy(&host).await;
}

#[tokio::test]
async fn wasi_grants_no_files_environment_or_sockets() {
    let host = hostile_host(config()).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let connect = format!("connect {}", listener.local_addr().expect("addr"));
    for attempt in ["read-file", "list-root", "write-file", "env", &connect] {
        let outcome = call(&host, "wasi-escape", attempt).await;
        let said = String::from_utf8(outcome.output.expect("the guest reports its attempt")).expect("text");
        assert!(said.starts_with("denied: "), "{attempt}: {said}");
    }
    assert!(listener.accept().is_err(), "the guest reached a socket on the host");
    assert!(!std::path::Path::new("/tmp/tta-wasi-escape").exists());
    // Reading the clock is allowed: guests need the time.
    let outcome = call(&host, "wasi-escape", "clock").await;
    let said = String::from_utf8(outcome.output.expect("clock")).expect("text");
    assert!(said.starts_with("allowed: "), "{said}");
    still_healthy(&host).await;
}

#[tokio::test]
async fn a_string_that_is_not_utf8_is_a_trap_of_the_guest() {
    let host = hostile_host(config()).await;
    let bytes = crate::generated::component("bad-utf8", crate::generated::Execute::InvalidUtf8Error);
    let plugin = host
        .inspect_bytes(std::path::Path::new("bad-utf8.wasm"), bytes)
        .await
        .expect("loads: the bad string is only in its answer");
    host.register(plugin).expect("registers");
    let outcome = call(&host, "bad-utf8", "").await;
    let Err(CallError::Trap { kind, .. }) = &outcome.output else {
        panic!("expected a trap, got {:?}", outcome.output);
    };
    assert!(kind.contains("not UTF-8"), "{kind}");
    assert_eq!(outcome.report.error.as_ref().map(CallError::error_type), Some("trap"));
    still_healthy(&host).await;
}

#[tokio::test]
async fn an_answer_outside_the_guests_memory_is_a_trap_of_the_guest() {
    // Found by fuzz target smith_component: such answers were reported as host errors.
    let host = hostile_host(config()).await;
    let bytes = crate::generated::component("out-of-bounds", crate::generated::Execute::OutOfBoundsOutput);
    let plugin = host
        .inspect_bytes(std::path::Path::new("out-of-bounds.wasm"), bytes)
        .await
        .expect("loads: the bad pointer is only in its answer");
    host.register(plugin).expect("registers");
    let outcome = call(&host, "out-of-bounds", "").await;
    let Err(CallError::Trap { kind, detail, .. }) = &outcome.output else {
        panic!("expected a trap, got {:?}", outcome.output);
    };
    assert!(kind.contains("canonical ABI"), "{kind}");
    assert!(detail.contains("out of bounds"), "{detail}");
    assert_eq!(outcome.report.error.as_ref().map(CallError::error_type), Some("trap"));
    still_healthy(&host).await;
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test]
async fn memory_bomb_stops_at_the_limit_and_host_memory_stays_bounded() {
    let mut config = config();
    config.limits.max_memory_bytes = 64 << 20;
    let host = hostile_host(config).await;
    let mut after_first = 0;
    // Other tests run in this process at the same time, so the bound is loose; a leak of
    // each bomb's memory would be 9 × 64 MiB.
    for round in 0..10 {
        let outcome = call(&host, "memory-hog", "").await;
        let Err(CallError::MemoryLimit { limit, requested }) = outcome.output else {
            panic!("expected MemoryLimit, got {:?}", outcome.output);
        };
        assert_eq!(limit, 64 << 20);
        assert!(requested > limit);
        assert!(outcome.report.stats.memory_peak_bytes <= limit);
        if round == 0 {
            after_first = resident_bytes();
        }
    }
    let growth = resident_bytes().saturating_sub(after_first);
    assert!(
        growth < 192 << 20,
        "host RSS grew by {growth} bytes over 9 more memory bombs"
    );
    still_healthy(&host).await;
}

#[tokio::test]
async fn panic_is_a_trap_with_the_panic_message_and_a_backtrace() {
    let host = hostile_host(config()).await;
    let outcome = call(&host, "trap", "").await;
    let Err(CallError::Trap {
        kind,
        detail,
        backtrace,
    }) = &outcome.output
    else {
        panic!("expected Trap, got {:?}", outcome.output);
    };
    assert!(kind.contains("unreachable"), "{kind}");
    assert!(detail.contains("deliberate panic in the trap fixture"), "{detail}");
    assert!(backtrace.contains("execute"), "{backtrace}");
    still_healthy(&host).await;
}

#[tokio::test]
async fn runaway_recursion_exhausts_the_stack() {
    let host = hostile_host(config()).await;
    let outcome = call(&host, "deep-recursion", "").await;
    let Err(CallError::StackExhausted { limit, backtrace }) = &outcome.output else {
        panic!("expected StackExhausted, got {:?}", outcome.output);
    };
    assert_eq!(*limit, config().limits.max_wasm_stack_bytes);
    assert!(backtrace.contains("descend"), "{backtrace}");
    still_healthy(&host).await;
}

#[tokio::test]
async fn oversized_output_is_refused() {
    let host = hostile_host(config()).await;
    let outcome = call(&host, "huge-output", r#"{"bytes": 20000000}"#).await;
    assert!(
        matches!(outcome.output, Err(CallError::OutputTooLarge { size: 20_000_000, limit }) if limit == config().limits.max_output_bytes),
        "{:?}",
        outcome.output
    );
    let small = call(&host, "huge-output", r#"{"bytes": 1000}"#).await;
    assert_eq!(small.output.expect("small output passes").len(), 1000);
}

#[tokio::test]
async fn oversized_input_is_refused_before_the_guest_runs() {
    let mut config = config();
    config.limits.max_input_bytes = 1024;
    let host = hostile_host(config).await;
    let outcome = host.call("echo", &[b'x'; 1025], Default::default()).await;
    assert!(
        matches!(
            outcome.output,
            Err(CallError::InputTooLarge {
                size: 1025,
                limit: 1024
            })
        ),
        "{:?}",
        outcome.output
    );
    assert_eq!(outcome.report.stats.fuel_consumed, 0);
}

#[tokio::test]
async fn invoke_recursion_stops_at_the_nesting_limit() {
    let host = hostile_host(config()).await;
    let outcome = call(&host, "invoke-self", "").await;
    let Err(CallError::Guest(e)) = &outcome.output else {
        panic!("expected the nesting error to surface, got {:?}", outcome.output);
    };
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("nesting limit of 8"), "{}", e.message);
    let mut depth = 0;
    let mut report: &tta_host::CallReport = &outcome.report;
    while let Some(next) = report.nested.first() {
        depth += 1;
        report = next;
    }
    assert_eq!(depth, 8);
    still_healthy(&host).await;
}

#[tokio::test]
async fn guest_stdout_and_stderr_become_bounded_log_records() {
    let mut config = config();
    config.limits.max_stdio_bytes = 64;
    let host = hostile_host(config).await;
    let outcome = call(&host, "trap", "").await;
    assert!(outcome.report.logs.iter().any(|l| l.message.contains("panicked at")));
    assert!(
        outcome.report.dropped.stdio_bytes > 0,
        "more than 64 bytes were written to stderr"
    );
}
