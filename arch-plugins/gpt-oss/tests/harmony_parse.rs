//! The Harmony stream parser: round trips, chunking, cut-off and malformed input.

use forge_gpt_oss::harmony::{
    render_assistant_messages, HarmonyOutput, HarmonyParser, ParsedMessage, StreamDelta,
};
use proptest::prelude::*;

fn parse_all(text: &str) -> HarmonyOutput {
    let mut parser = HarmonyParser::new();
    parser.push(text);
    parser.finish()
}

fn parse_in_chunks(text: &str, sizes: &[usize]) -> (HarmonyOutput, Vec<StreamDelta>) {
    let mut parser = HarmonyParser::new();
    let mut deltas = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let mut i = 0;
    while at < chars.len() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        let end = (at + size).min(chars.len());
        let piece: String = chars[at..end].iter().collect();
        deltas.extend(parser.push(&piece));
        at = end;
        i += 1;
    }
    (parser.finish(), deltas)
}

/// Text the model could write inside a message: no special-token syntax.
fn content() -> impl Strategy<Value = String> {
    prop::string::string_regex("[a-zA-Z0-9 .,:{}\"\\[\\]\n<>|é明-]{0,40}")
        .unwrap()
        .prop_filter("no special-token syntax", |s| !s.contains("<|"))
}

fn message() -> impl Strategy<Value = ParsedMessage> {
    let name = prop::string::string_regex("[a-z_]{1,12}").unwrap();
    prop_oneof![
        content().prop_map(|c| ParsedMessage {
            channel: Some("analysis".into()),
            content: c,
            end: Some("<|end|>".into()),
            ..Default::default()
        }),
        content().prop_map(|c| ParsedMessage {
            channel: Some("final".into()),
            content: c,
            end: Some("<|return|>".into()),
            ..Default::default()
        }),
        content().prop_map(|c| ParsedMessage {
            channel: Some("commentary".into()),
            content: c,
            end: Some("<|end|>".into()),
            ..Default::default()
        }),
        (name, content()).prop_map(|(n, c)| ParsedMessage {
            channel: Some("commentary".into()),
            recipient: Some(format!("functions.{n}")),
            content_type: Some("json".into()),
            content: c,
            end: Some("<|call|>".into()),
        }),
    ]
}

proptest! {
    #[test]
    fn render_then_parse_gives_the_messages_back(
        messages in prop::collection::vec(message(), 0..5),
        sizes in prop::collection::vec(1usize..9, 1..6),
    ) {
        let text = render_assistant_messages(&messages);
        prop_assert_eq!(&parse_all(&text).messages, &messages);
        let (chunked, deltas) = parse_in_chunks(&text, &sizes);
        prop_assert_eq!(&chunked.messages, &messages);
        // The streamed deltas add up to every message's content.
        let streamed: String = deltas.iter().map(|d| match d {
            StreamDelta::Reasoning(t) | StreamDelta::Final(t) | StreamDelta::Commentary(t) => t.clone(),
            StreamDelta::ToolArguments { text, .. } => text.clone(),
        }).collect();
        let all: String = messages.iter().map(|m| m.content.clone()).collect();
        prop_assert_eq!(streamed, all);
    }

    #[test]
    fn output_cut_off_anywhere_parses_to_prefixes(
        messages in prop::collection::vec(message(), 1..4),
        cut in 0usize..400,
    ) {
        let text = render_assistant_messages(&messages);
        let cut = text.char_indices().map(|(i, _)| i).chain([text.len()]).nth(cut).unwrap_or(text.len());
        let parsed = parse_all(&text[..cut]);
        prop_assert!(parsed.messages.len() <= messages.len());
        for (i, got) in parsed.messages.iter().enumerate() {
            let want = &messages[i];
            prop_assert!(want.content.starts_with(&got.content), "{:?} vs {:?}", got, want);
            if i + 1 < parsed.messages.len() {
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,80}", sizes in prop::collection::vec(1usize..5, 1..4)) {
        let (whole, _) = parse_in_chunks(&text, &[usize::MAX]);
        let (chunked, _) = parse_in_chunks(&text, &sizes);
        prop_assert_eq!(whole, chunked);
    }
}

#[test]
fn recipient_after_the_channel_and_constrain() {
    let out = parse_all(
        "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>",
    );
    let calls = out.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(calls[0].arguments, "{\"city\": \"Paris\"}");
    assert_eq!(out.messages[0].content_type.as_deref(), Some("json"));
}

#[test]
fn a_new_start_ends_a_message_without_an_end_token() {
    let out = parse_all(
        "<|channel|>analysis<|message|>thinking<|start|>assistant<|channel|>final<|message|>done",
    );
    assert_eq!(out.reasoning(), "thinking");
    assert_eq!(out.final_text(), "done");
    assert_eq!(out.messages[0].end, None);
    assert_eq!(out.messages[1].end, None);
}

#[test]
fn malformed_inputs() {
    // Plain text with no Harmony structure is an unfinished header, not an answer.
    let out = parse_all("just words");
    assert!(out.messages.is_empty());
    assert_eq!(out.unfinished_header.as_deref(), Some("just words"));
    // A stray end token inside a header is kept in the header text.
    let out = parse_all("<|channel|>fin<|end|>al");
    assert!(out.messages.is_empty());
    assert!(out.unfinished_header.unwrap().contains("<|end|>"));
    // "<|" that starts no special token is text.
    let out = parse_all("<|channel|>final<|message|>a <|b|> c<|return|>");
    assert_eq!(out.final_text(), "a <|b|> c");
    // A message with no header at all.
    let out = parse_all("<|message|>bare<|end|>");
    assert_eq!(out.final_text(), "bare");
    // A special token cut in half at the very end is dropped.
    let out = parse_all("<|channel|>final<|message|>hello<|ret");
    assert_eq!(out.final_text(), "hello");
    assert_eq!(out.messages[0].end, None);
}

#[test]
fn stream_snapshot() {
    let text = "<|channel|>analysis<|message|>User wants weather. Call the tool.<|end|>\
                <|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}<|call|>\
                <|start|>assistant<|channel|>commentary<|message|>Checking now.<|end|>\
                <|start|>assistant<|channel|>final<|message|>It is sunny in Paris.<|return|>";
    let (out, deltas) = parse_in_chunks(text, &[7, 3, 11]);
    insta::assert_debug_snapshot!("stream_deltas", deltas);
    insta::assert_debug_snapshot!("stream_output", out);
}
