//! Forge's Harmony renderer against Hugging Face's rendering of the same
//! conversations (golden/harmony/render_cases.json, made by
//! golden/harmony_fixtures.py with gpt-oss's chat template and the real
//! o200k_harmony tokenizer).

use std::path::{Path, PathBuf};

use forge_gpt_oss::harmony::{
    messages_from_openai, render_conversation, tools_from_openai, ChatMessage, HarmonyError,
    ReasoningEffort, RenderOptions,
};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture_cases() -> Vec<Value> {
    let path = repo_root().join("golden/harmony/render_cases.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    fixture["cases"].as_array().unwrap().clone()
}

fn options(case: &Value) -> RenderOptions {
    let kwargs = &case["kwargs"];
    let effort = match kwargs.get("reasoning_effort").and_then(Value::as_str) {
        Some("low") => ReasoningEffort::Low,
        Some("high") => ReasoningEffort::High,
        _ => ReasoningEffort::Medium,
    };
    let tools = kwargs
        .get("tools")
        .and_then(Value::as_array)
        .map(|t| tools_from_openai(t).unwrap())
        .unwrap_or_default();
    RenderOptions {
        model_identity: kwargs
            .get("model_identity")
            .and_then(Value::as_str)
            .map(str::to_string),
        reasoning_effort: effort,
        current_date: case["date"].as_str().unwrap().to_string(),
        tools,
        add_generation_prompt: kwargs["add_generation_prompt"].as_bool().unwrap(),
    }
}

fn rendered(case: &Value) -> String {
    let messages = messages_from_openai(case["messages"].as_array().unwrap()).unwrap();
    render_conversation(&messages, &options(case)).unwrap()
}

#[test]
fn renders_every_case_exactly_as_hugging_face() {
    let cases = fixture_cases();
    assert!(cases.len() >= 6);
    for case in &cases {
        let expected = case["text"].as_str().unwrap();
        assert_eq!(rendered(case), expected, "case {}", case["name"]);
    }
}

#[test]
fn token_ids_match_hugging_face_with_the_real_tokenizer() {
    let path = repo_root().join(".forge/harmony/tokenizer.json");
    if !path.is_file() {
        eprintln!(
            "SKIPPED: {} is absent (golden/fetch_harmony_inputs.sh fetches it); \
             the rendered text is still checked by renders_every_case_exactly_as_hugging_face",
            path.display()
        );
        return;
    }
    let tokenizer = tokenizers::Tokenizer::from_file(&path).unwrap();
    for case in fixture_cases() {
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tokenizer
            .encode(rendered(&case).as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(ids, expected, "case {}", case["name"]);
    }
}

#[test]
fn refuses_what_the_template_refuses() {
    let options = RenderOptions::default();
    let tool_first = [
        ChatMessage::User("hi".into()),
        ChatMessage::Tool("x".into()),
    ];
    assert!(matches!(
        render_conversation(&tool_first, &options),
        Err(HarmonyError::InvalidMessage { index: 1, .. })
    ));
    let tagged = [ChatMessage::Assistant {
        content: "<|channel|>final<|message|>hi".into(),
        thinking: None,
        tool_call: None,
    }];
    let err = render_conversation(&tagged, &options).unwrap_err();
    assert!(err.to_string().contains("<|channel|>"), "{err}");
}
