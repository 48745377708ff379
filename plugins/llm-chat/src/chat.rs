//! The OpenAI chat-completions wire format, which OpenAI, Ollama, vLLM, LiteLLM and most
//! gateways speak: the request body, the JSON answer, and the server-sent events of a
//! streamed one (`data: {chunk}` lines, then `data: [DONE]`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message of the conversation.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// The body of `POST {base_url}/chat/completions`.
#[derive(Serialize)]
pub struct Request<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    pub stream: bool,
    /// With `stream`: ask for a last chunk carrying `usage` (OpenAI, vLLM and LiteLLM send
    /// it; a server that does not still streams the text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

/// Token counts as the provider reports them.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// What the answer says, whichever way it came.
#[derive(Debug, Default)]
pub struct Completion {
    pub id: Option<String>,
    pub model: Option<String>,
    pub text: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// Server-sent events received (0 for a JSON answer).
    pub chunks: u32,
}

#[derive(Deserialize)]
struct Answer {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<Content>,
    delta: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    content: Option<String>,
}

/// Parses a whole JSON answer.
pub fn parse_answer(body: &[u8]) -> Result<Completion, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| format!("{e} (it begins `{}`)", excerpt(body)))?;
    let Some(choice) = answer.choices.into_iter().next() else {
        return Err("it has no `choices`".into());
    };
    Ok(Completion {
        id: answer.id,
        model: answer.model,
        text: choice.message.and_then(|m| m.content).unwrap_or_default(),
        finish_reason: choice.finish_reason,
        usage: answer.usage,
        chunks: 0,
    })
}

/// Reads server-sent events as they arrive: feed it the body's bytes in any pieces.
#[derive(Default)]
pub struct Events {
    pending: Vec<u8>,
    pub completion: Completion,
    pub done: bool,
}

impl Events {
    /// Takes in `bytes`; an event that is not a chunk, or a provider's `error` event, is an error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            self.line(line.trim_end_matches(['\r', '\n']))?;
        }
        Ok(())
    }

    /// Ends the stream: a last line without its newline is read too.
    pub fn finish(&mut self) -> Result<(), String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = String::from_utf8_lossy(&rest);
        self.line(rest.trim_end_matches(['\r', '\n']))
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        // Blank lines end events, `:` lines are comments, `event:`/`id:` carry nothing here.
        let Some(data) = line.strip_prefix("data:") else {
            return Ok(());
        };
        let data = data.trim_start();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            format!(
                "event {} is not JSON: {e} (`{}`)",
                self.completion.chunks + 1,
                excerpt(data.as_bytes())
            )
        })?;
        if let Some(error) = value.get("error") {
            return Err(format!("the provider sent an error event: {}", provider_message(error)));
        }
        let chunk: Answer = serde_json::from_value(value)
            .map_err(|e| format!("event {} is not a chat chunk: {e}", self.completion.chunks + 1))?;
        let c = &mut self.completion;
        c.chunks += 1;
        c.id = c.id.take().or(chunk.id);
        c.model = c.model.take().or(chunk.model);
        if let Some(usage) = chunk.usage {
            c.usage = Some(usage);
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                c.text.push_str(&text);
            }
            if choice.finish_reason.is_some() {
                c.finish_reason = choice.finish_reason;
            }
        }
        Ok(())
    }
}

/// The provider's own words from an error body (`{"error": {"message": …}}`), short.
pub fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => provider_message(value.get("error").unwrap_or(&value)),
        Err(_) => excerpt(body),
    }
}

fn provider_message(error: &Value) -> String {
    let text = match error {
        Value::String(s) => s.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| other.to_string(), str::to_owned),
    };
    excerpt(text.as_bytes())
}

/// The first 200 characters of `bytes` as text.
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}
