//! Qwen2 on forge-core's decoder base: the Llama layer shape with biases
//! on the q, k and v projections (none on o).

use forge_core::decoder::{Attention, AttentionDims, CausalLm, DecoderSpec, PreNormLayer};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp};
use forge_core::{ModelConfig, Result, Weights};

use crate::config::Qwen2Args;

/// A Qwen2: the decoder base over pre-norm layers.
pub type Qwen2 = CausalLm<PreNormLayer>;

/// Builds a Qwen2 model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Qwen2 from its config and the weights under HF's names.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Qwen2> {
    let args = Qwen2Args::parse(config)?;
    let rope = args.rope()?;
    let layers = args
        .windows(config)?
        .into_iter()
        .enumerate()
        .map(|(i, window)| load_layer(weights, &args, i, window, rope.clone()))
        .collect();
    let spec = DecoderSpec {
        name: "Qwen2",
        vocab_size: args.vocab_size,
        hidden_size: args.hidden_size,
        rms_norm_eps: args.rms_norm_eps,
        tie_word_embeddings: args.tie_word_embeddings,
        max_context: Some(args.max_position_embeddings),
    };
    let model = CausalLm::load(weights, spec, layers)?;
    let plan = plan(&args, model.layers());
    Ok(model.with_plan(plan))
}

fn load_layer(
    w: &mut Weights,
    args: &Qwen2Args,
    i: usize,
    window: Option<usize>,
    rope: forge_core::rope::Rope,
) -> PreNormLayer {
    let p = format!("model.layers.{i}");
    let hidden = args.hidden_size;
    let dims = AttentionDims {
        hidden,
        heads: args.num_attention_heads,
        kv_heads: args.kv_heads(),
        head_dim: args.head_dim(),
    };
    // Biases on q, k and v; none on o.
    let attention = Attention::load(
        w,
        &format!("{p}.self_attn"),
        dims,
        (true, false),
        rope,
        window,
    );
    let mlp = GatedMlp::load(
        w,
        &format!("{p}.mlp"),
        hidden,
        args.intermediate_size,
        false,
        Activation::Silu,
    );
    PreNormLayer::load(w, &p, (hidden, args.rms_norm_eps), attention, mlp)
}

/// Qwen2's own plan lines.
fn plan(a: &Qwen2Args, layers: &[PreNormLayer]) -> Vec<PlanItem> {
    let (attention, rope) = layers
        .first()
        .map(|l| (l.self_attn.describe(), l.self_attn.describe_rope()))
        .unwrap_or_default();
    vec![
        PlanItem::new("attention", format!("{attention} (q/k/v only)")),
        PlanItem::new(
            "mlp",
            format!("SwiGLU, intermediate {}", a.intermediate_size),
        ),
        PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
        PlanItem::new("rope", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope),
    ]
}
