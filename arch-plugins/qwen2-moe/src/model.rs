//! Qwen2-MoE on forge-core's decoder base: Qwen2's attention (biases on q,
//! k and v, none on o) and, per layer, a dense SwiGLU or a sparse MoE block
//! (forge-mixtral's) with a shared expert behind a sigmoid gate.

use forge_core::decoder::{Attention, AttentionDims, CausalLm, DecoderSpec};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp};
use forge_core::rope::Rope;
use forge_core::{ModelConfig, Result, Weights};
use forge_mixtral::{FeedForward, MoeDims, MoeLayer, SparseMoe};
use forge_qwen3_moe::config::describe_dense;

use crate::config::Qwen2MoeArgs;

/// A Qwen2-MoE: the decoder base over MoE layers.
pub type Qwen2Moe = CausalLm<MoeLayer>;

/// The architecture's `sanitize`: the checkpoint layout is Qwen3-MoE's
/// (`mlp.experts.{e}.{gate,up,down}_proj`, HF's fused `gate_up_proj` or
/// mlx-lm's `switch_mlp`); the shared expert keeps its names.
pub use forge_qwen3_moe::sanitize;

/// Builds a Qwen2-MoE model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Qwen2-MoE from its config and the weights as [`sanitize`] left them.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Qwen2Moe> {
    let args = Qwen2MoeArgs::parse(config)?;
    let rope = args.rope()?;
    let layers = args
        .windows(config)?
        .into_iter()
        .enumerate()
        .map(|(i, window)| load_layer(weights, &args, i, window, rope.clone()))
        .collect();
    let spec = DecoderSpec {
        name: "Qwen2-MoE",
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
    args: &Qwen2MoeArgs,
    i: usize,
    window: Option<usize>,
    rope: Rope,
) -> MoeLayer {
    let p = format!("model.layers.{i}");
    let hidden = args.hidden_size;
    let dims = AttentionDims {
        hidden,
        heads: args.num_attention_heads,
        kv_heads: args.kv_heads(),
        head_dim: args.head_dim(),
    };
    let attention = Attention::load(
        w,
        &format!("{p}.self_attn"),
        dims,
        (args.qkv_bias, false),
        rope,
        window,
    );
    let mlp_prefix = format!("{p}.mlp");
    let mlp = if args.is_moe_layer(i) {
        let dims = MoeDims {
            hidden,
            inter: args.moe_intermediate_size,
            experts: args.num_experts,
            top_k: args.num_experts_per_tok,
            renormalize: args.norm_topk_prob,
        };
        let moe = SparseMoe::load(w, &mlp_prefix, dims).with_shared_expert(
            w,
            &mlp_prefix,
            args.shared_expert_intermediate_size,
        );
        FeedForward::Moe(Box::new(moe))
    } else {
        FeedForward::Dense(GatedMlp::load(
            w,
            &mlp_prefix,
            hidden,
            args.intermediate_size,
            false,
            Activation::Silu,
        ))
    };
    MoeLayer::load(w, &p, (hidden, args.rms_norm_eps), attention, mlp)
}

/// Qwen2-MoE's own plan lines.
fn plan(a: &Qwen2MoeArgs, layers: &[MoeLayer]) -> Vec<PlanItem> {
    let (attention, rope) = layers
        .first()
        .map(|l| (l.self_attn.describe(), l.self_attn.describe_rope()))
        .unwrap_or_default();
    let experts = layers
        .iter()
        .find_map(|l| l.mlp.moe().map(SparseMoe::describe))
        .unwrap_or_else(|| "none (every layer dense)".into());
    let moe_layers = (0..a.num_hidden_layers)
        .filter(|&i| a.is_moe_layer(i))
        .count();
    vec![
        PlanItem::new(
            "attention",
            format!("{attention} (qkv_bias {}, no o bias)", a.qkv_bias),
        ),
        PlanItem::new("experts", experts),
        PlanItem::new(
            "mlp",
            format!(
                "sparse MoE in {moe_layers} layers (decoder_sparse_step {}, mlp_only_layers \
                 {:?}); dense SwiGLU (intermediate {}) in layers {}",
                a.decoder_sparse_step,
                a.mlp_only_layers.as_deref().unwrap_or_default(),
                a.intermediate_size,
                describe_dense(a.num_hidden_layers, |i| a.is_moe_layer(i)),
            ),
        ),
        PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
        PlanItem::new("rope", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope),
    ]
}
