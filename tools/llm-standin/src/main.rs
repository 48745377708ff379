//! `llm-standin`: the stand-in provider as a process, for the demo. It prints its base URL
//! (`http://127.0.0.1:<port>/v1`) on stdout and serves until it is stopped.
//!
//! ```text
//! llm-standin [--listen 127.0.0.1:0] [--api-key-env VAR]
//! ```
//! `--api-key-env` names the variable holding the key every request must carry (the key
//! itself never goes on the command line).

use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "usage: llm-standin [--listen 127.0.0.1:0] [--api-key-env VAR]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut api_key = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            ("--api-key-env", Some(var)) => match std::env::var(&var) {
                Ok(key) => api_key = Some(key),
                Err(_) => {
                    eprintln!("llm-standin: the environment variable `{var}` is not set");
                    return ExitCode::from(2);
                }
            },
            ("--help" | "-h", _) => {
                println!("{USAGE}\n\nA stand-in for an OpenAI-compatible LLM provider on loopback (tests and demo).");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("llm-standin: unexpected argument `{arg}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let addr = match listen.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("llm-standin: --listen `{listen}`: {e}");
            return ExitCode::from(2);
        }
    };
    let standin = match tta_llm_standin::Standin::start_on(addr, None, api_key).await {
        Ok(standin) => standin,
        Err(e) => {
            eprintln!("llm-standin: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    println!("http://{}/v1", standin.addr);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
