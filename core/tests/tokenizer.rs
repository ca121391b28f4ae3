//! Tokenizers and chat templates from a model folder the test writes:
//! tokenizer.json (a WordLevel model), tokenizer_config.json with special
//! tokens and an inline template, and chat_template.jinja.

mod common;

use std::path::Path;

use common::write;
use forge_core::chat_template::{ChatTemplate, Message};
use forge_core::tokenizer::Tokenizer;
use forge_core::Error;
use serde_json::{json, Map, Value};

const VOCAB: &[&str] = &[
    "<s>",
    "</s>",
    "<unk>",
    "<|im_start|>",
    "<|im_end|>",
    "hello",
    "world",
    "!",
    "system",
    "user",
    "assistant",
    "be",
    "brief",
    "hi",
];

fn id(token: &str) -> u32 {
    VOCAB.iter().position(|t| *t == token).unwrap() as u32
}

/// A WordLevel tokenizer.json: whitespace pre-tokenizer, `<s>` prepended
/// by the post-processor, the chat markers as added special tokens.
fn tokenizer_json() -> String {
    let vocab: Map<String, Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    let added: Vec<Value> = ["<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|t| {
            json!({"id": id(t), "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}

/// ChatML, written with block tags on their own lines as model repos do
/// (trim_blocks and lstrip_blocks make that produce no stray whitespace).
const CHATML: &str = "{{ bos_token }}\
{% for message in messages %}
    {% if loop.first and message['role'] != 'system' %}
<|im_start|>system
be brief<|im_end|>
    {% endif %}
<|im_start|>{{ message['role'] }}
{{ message['content'].strip() }}<|im_end|>
{% endfor %}
{% if add_generation_prompt %}
<|im_start|>assistant
{% endif %}
";

fn model_dir(config: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tokenizer.json", &tokenizer_json());
    write(dir.path(), "tokenizer_config.json", &config.to_string());
    dir
}

fn chatml_dir() -> tempfile::TempDir {
    model_dir(json!({
        "bos_token": "<s>",
        "eos_token": {"content": "</s>", "lstrip": false, "normalized": false,
                      "rstrip": false, "single_word": false},
        "pad_token": null,
        "chat_template": CHATML,
    }))
}

fn load(dir: &Path) -> Tokenizer {
    Tokenizer::from_dir(dir).unwrap()
}

fn render(tok: &Tokenizer, messages: &[Message], generation_prompt: bool) -> String {
    tok.chat_template
        .as_ref()
        .expect("a chat template")
        .render(messages, generation_prompt, &Map::new())
        .unwrap()
}

#[test]
fn special_tokens_come_from_tokenizer_config() {
    let dir = chatml_dir();
    let tok = load(dir.path());
    assert_eq!(tok.bos_token.as_deref(), Some("<s>"));
    // Written as an object with "content".
    assert_eq!(tok.eos_token.as_deref(), Some("</s>"));
    assert_eq!(tok.pad_token, None);
    assert_eq!(tok.token_id("<|im_end|>"), Some(id("<|im_end|>")));
    assert_eq!(tok.token_id("nonexistent"), None);
}

#[test]
fn encode_decode_round_trip() {
    let dir = chatml_dir();
    let tok = load(dir.path());
    let text = "hello world !";
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(ids, vec![id("hello"), id("world"), id("!")]);
    assert_eq!(tok.decode(&ids, false).unwrap(), text);

    // The post-processor adds <s>; skipping special tokens removes it again.
    let with_bos = tok.encode("hello world!", true).unwrap();
    assert_eq!(with_bos, vec![0, id("hello"), id("world"), id("!")]);
    assert_eq!(tok.decode(&with_bos, false).unwrap(), "<s> hello world !");
    assert_eq!(tok.decode(&with_bos, true).unwrap(), text);

    // Out-of-vocabulary words become <unk>.
    assert_eq!(
        tok.encode("hello there", false).unwrap(),
        vec![id("hello"), id("<unk>")]
    );
}

#[test]
fn chatml_renders_exactly() {
    let dir = chatml_dir();
    let tok = load(dir.path());
    let messages = [
        Message::new("system", "  You are terse.\n"),
        Message::new("user", "hello world !"),
        Message::new("assistant", "hi"),
        Message::new("user", "\thi again  "),
    ];
    assert_eq!(
        render(&tok, &messages, true),
        "<s><|im_start|>system\nYou are terse.<|im_end|>\n\
         <|im_start|>user\nhello world !<|im_end|>\n\
         <|im_start|>assistant\nhi<|im_end|>\n\
         <|im_start|>user\nhi again<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    // Without the generation prompt, and with the template's default system turn.
    assert_eq!(
        render(&tok, &[Message::new("user", "hi")], false),
        "<s><|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    );
}

#[test]
fn the_rendered_prompt_tokenizes_into_the_chat_markers() {
    let dir = chatml_dir();
    let tok = load(dir.path());
    let text = render(&tok, &[Message::new("user", "hello world!")], true);
    let ids = tok.encode(&text, false).unwrap();
    let (start, end) = (id("<|im_start|>"), id("<|im_end|>"));
    assert_eq!(
        ids,
        vec![
            0,
            start,
            id("system"),
            id("be"),
            id("brief"),
            end,
            start,
            id("user"),
            id("hello"),
            id("world"),
            id("!"),
            end,
            start,
            id("assistant"),
        ]
    );
}

#[test]
fn chat_template_jinja_takes_precedence() {
    let dir = chatml_dir();
    write(
        dir.path(),
        "chat_template.jinja",
        "FILE {{ messages | length }} {{ eos_token }}",
    );
    let tok = load(dir.path());
    assert_eq!(
        render(
            &tok,
            &[Message::new("user", "a"), Message::new("assistant", "b")],
            false
        ),
        "FILE 2 </s>"
    );
}

#[test]
fn a_named_template_list_uses_default() {
    let dir = model_dir(json!({
        "chat_template": [
            {"name": "tool_use", "template": "TOOLS"},
            {"name": "default", "template": "DEFAULT {{ messages[0].content }}"}
        ]
    }));
    let tok = load(dir.path());
    assert_eq!(tok.bos_token, None);
    assert_eq!(
        render(&tok, &[Message::new("user", "x")], false),
        "DEFAULT x"
    );
}

#[test]
fn no_template_at_all() {
    let dir = model_dir(json!({"bos_token": "<s>"}));
    assert!(load(dir.path()).chat_template.is_none());
}

#[test]
fn raise_exception_becomes_a_chat_template_error() {
    let template = "{% if messages[0]['role'] != 'user' %}\
        {{ raise_exception('Conversations must start with a user message') }}\
        {% endif %}ok";
    let chat = ChatTemplate::new(template.into(), None, None).unwrap();
    assert_eq!(
        chat.render(&[Message::new("user", "hi")], false, &Map::new())
            .unwrap(),
        "ok"
    );
    match chat.render(&[Message::new("assistant", "hi")], false, &Map::new()) {
        Err(Error::ChatTemplate(message)) => {
            assert!(
                message.contains("Conversations must start with a user message"),
                "{message}"
            );
        }
        other => panic!("expected Error::ChatTemplate, got {other:?}"),
    }
}

#[test]
fn extra_variables_reach_the_template() {
    let template =
        "{% if reasoning_effort is defined %}Reasoning: {{ reasoning_effort }}\n{% endif %}\
        {% if enable_thinking is defined and not enable_thinking %}/no_think\n{% endif %}\
        {{ tools | tojson }}";
    let chat = ChatTemplate::new(template.into(), None, None).unwrap();
    let mut extra = Map::new();
    extra.insert("reasoning_effort".into(), json!("high"));
    extra.insert("enable_thinking".into(), json!(false));
    extra.insert(
        "tools".into(),
        json!([{"name": "add", "parameters": {"a": 1, "b": [true, null]}}]),
    );
    assert_eq!(
        chat.render(&[], false, &extra).unwrap(),
        "Reasoning: high\n/no_think\n\
         [{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": [true, null]}}]"
    );
    let mut extra = Map::new();
    extra.insert("tools".into(), json!([]));
    assert_eq!(chat.render(&[], false, &extra).unwrap(), "[]");
}

#[test]
fn python_string_methods_work() {
    let template = "{% for m in messages %}\
        {{ m.content.strip() }}|{{ m.content.upper() }}|\
        {% if m.content.startswith(' a') %}starts{% endif %}|\
        {{ m.content.split(',') | length }}|{{ m.content.replace('b', 'B').lstrip() }}\n\
        {% endfor %}";
    let chat = ChatTemplate::new(template.into(), None, None).unwrap();
    assert_eq!(
        chat.render(&[Message::new("user", " a,b ")], false, &Map::new())
            .unwrap(),
        "a,b| A,B |starts|2|a,B \n"
    );
}

#[test]
fn template_and_file_errors() {
    // A template that does not compile.
    match ChatTemplate::new("{% for m in messages %}".into(), None, None) {
        Err(Error::ChatTemplate(message)) => assert!(!message.is_empty()),
        other => panic!("expected Error::ChatTemplate, got {other:?}"),
    }
    let dir = chatml_dir();
    write(dir.path(), "chat_template.jinja", "{{ unclosed ");
    assert!(matches!(
        Tokenizer::from_dir(dir.path()),
        Err(Error::ChatTemplate(_))
    ));

    // No tokenizer.json.
    let empty = tempfile::tempdir().unwrap();
    match Tokenizer::from_dir(empty.path()) {
        Err(Error::MissingFile { path, .. }) => {
            assert_eq!(path, empty.path().join("tokenizer.json"))
        }
        other => panic!("expected Error::MissingFile, got {other:?}"),
    }

    // A tokenizer.json that is not a tokenizer.
    let dir = chatml_dir();
    write(dir.path(), "tokenizer.json", "{\"model\": 3}");
    match Tokenizer::from_dir(dir.path()) {
        Err(Error::Tokenizer { path, message }) => {
            assert_eq!(path, dir.path().join("tokenizer.json"));
            assert!(!message.is_empty());
        }
        other => panic!("expected Error::Tokenizer, got {other:?}"),
    }

    // A tokenizer_config.json that is not JSON.
    let dir = chatml_dir();
    write(dir.path(), "tokenizer_config.json", "{\n\"bos_token\": }");
    match Tokenizer::from_dir(dir.path()) {
        Err(Error::Json { path, line, .. }) => {
            assert_eq!(path, dir.path().join("tokenizer_config.json"));
            assert_eq!(line, 2);
        }
        other => panic!("expected Error::Json, got {other:?}"),
    }
}
