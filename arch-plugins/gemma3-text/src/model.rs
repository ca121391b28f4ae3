//! Gemma 3 (text) on forge-core's decoder base: Gemma 2's layer with
//! (1+w) RMSNorms on every query and key head and a rope per layer type.

use forge_core::decoder::{Attention, AttentionDims, CausalLm, DecoderSpec, QkNorm};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{GatedMlp, RmsNorm};
use forge_core::{ModelConfig, Result, Weights};
use forge_gemma2::config::activation;
use forge_gemma2::model::{gemma_lm, gemma_plan, mlp_line, query_scale, softcap_line, GemmaLayer};

use crate::config::Gemma3TextArgs;

/// A Gemma 3 text model: the decoder base over Gemma layers.
pub type Gemma3Text = CausalLm<GemmaLayer>;

/// Builds a Gemma 3 text model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Gemma 3 text model from its config and the weights under HF's names.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Gemma3Text> {
    let args = Gemma3TextArgs::parse(config)?;
    let (sliding_rope, full_rope) = args.ropes(config)?;
    let act = activation(config, &args.hidden_activation)?;
    let (hidden, eps, head_dim) = (args.hidden_size, args.rms_norm_eps, args.head_dim);
    let dims = AttentionDims {
        hidden,
        heads: args.num_attention_heads,
        kv_heads: args.num_key_value_heads,
        head_dim,
    };
    let bias = args.attention_bias;
    let layers = args
        .windows(config)?
        .into_iter()
        .enumerate()
        .map(|(i, window)| {
            let p = format!("model.layers.{i}");
            let a = format!("{p}.self_attn");
            let rope = match window {
                Some(_) => sliding_rope.clone(),
                None => full_rope.clone(),
            };
            let qk_norm = QkNorm::PerHead {
                q: RmsNorm::load_plus_one(weights, &format!("{a}.q_norm"), head_dim, eps),
                k: RmsNorm::load_plus_one(weights, &format!("{a}.k_norm"), head_dim, eps),
            };
            // HF 5.23's Gemma 3 attention does not soft-cap, whatever
            // attn_logit_softcapping says.
            let attn = Attention::load(weights, &a, dims, (bias, bias), rope, window)
                .with_scale(query_scale(args.query_pre_attn_scalar))
                .with_qk_norm(qk_norm);
            let mlp = GatedMlp::load(
                weights,
                &format!("{p}.mlp"),
                hidden,
                args.intermediate_size,
                false,
                act,
            );
            GemmaLayer::load(weights, &p, (hidden, eps), attn, mlp)
        })
        .collect();
    let spec = DecoderSpec {
        name: "Gemma 3",
        vocab_size: args.vocab_size,
        hidden_size: hidden,
        rms_norm_eps: eps,
        tie_word_embeddings: args.tie_word_embeddings,
        max_context: Some(args.max_position_embeddings),
    };
    let model = gemma_lm(weights, spec, layers, args.final_logit_softcapping);
    let (sliding, full) = args.rope_parameters(config)?;
    let mut plan = gemma_plan(model.layers(), hidden, eps, args.query_pre_attn_scalar);
    plan.push(PlanItem::new(
        "mlp",
        mlp_line(args.intermediate_size, &args.hidden_activation, act),
    ));
    let mut caps = softcap_line(None, args.final_logit_softcapping);
    if let Some(cap) = args.attn_logit_softcapping {
        caps.push_str(&format!(
            " (attn_logit_softcapping {cap} is not applied, as in HF's Gemma 3)"
        ));
    }
    plan.push(PlanItem::new("soft-cap", caps));
    plan.push(PlanItem::new("rope (sliding)", sliding.summary()));
    plan.push(PlanItem::new("rope (full)", full.summary()));
    plan.push(PlanItem::new(
        "rope kernels",
        format!(
            "sliding: {}; full: {}",
            sliding_rope.describe(),
            full_rope.describe()
        ),
    ));
    Ok(model.with_plan(plan))
}
