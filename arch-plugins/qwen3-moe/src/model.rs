//! Qwen3-MoE on forge-core's decoder base: Qwen3's attention (an RMSNorm on
//! each query and key head before rope) and, per layer, a dense SwiGLU or
//! a sparse MoE block (forge-mixtral's, without a shared expert).

use forge_core::decoder::{Attention, AttentionDims, CausalLm, DecoderSpec, QkNorm};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp};
use forge_core::rope::Rope;
use forge_core::{ModelConfig, Result, TensorMap, Weights};
use forge_mixtral::model::config_usize;
use forge_mixtral::{sanitize_experts, FeedForward, MoeDims, MoeLayer, SparseMoe};

use crate::config::{describe_dense, Qwen3MoeArgs};

/// A Qwen3-MoE: the decoder base over MoE layers.
pub type Qwen3Moe = CausalLm<MoeLayer>;

/// Builds a Qwen3-MoE model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Qwen3-MoE from its config and the weights as [`sanitize`] left them.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Qwen3Moe> {
    let args = Qwen3MoeArgs::parse(config)?;
    let rope = args.rope()?;
    let layers = args
        .windows()
        .into_iter()
        .enumerate()
        .map(|(i, window)| load_layer(weights, &args, i, window, rope.clone()))
        .collect();
    let spec = DecoderSpec {
        name: "Qwen3-MoE",
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
    args: &Qwen3MoeArgs,
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
    let prefix = format!("{p}.self_attn");
    let bias = args.attention_bias;
    let attention = Attention::load(w, &prefix, dims, (bias, bias), rope, window)
        .with_qk_norm(QkNorm::per_head(w, &prefix, dims, args.rms_norm_eps));
    let mlp_prefix = format!("{p}.mlp");
    let mlp = if args.is_moe_layer(i) {
        let dims = MoeDims {
            hidden,
            inter: args.moe_intermediate_size,
            experts: args.num_experts,
            top_k: args.num_experts_per_tok,
            renormalize: args.norm_topk_prob,
        };
        FeedForward::Moe(Box::new(SparseMoe::load(w, &mlp_prefix, dims)))
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

/// The architecture's `sanitize`: each MoE layer's experts stacked (from
/// the hub's `mlp.experts.{e}.{gate,up,down}_proj`, HF's fused
/// `gate_up_proj` or mlx-lm's `switch_mlp`; see
/// [`forge_mixtral::sanitize_experts`]).
pub fn sanitize(config: &ModelConfig, mut tensors: TensorMap) -> Result<TensorMap> {
    let layers = config_usize(config, "num_hidden_layers", None)?;
    let experts = match config.json().get("num_local_experts") {
        Some(_) => config_usize(config, "num_local_experts", None)?,
        None => config_usize(config, "num_experts", Some(128))?,
    };
    for i in 0..layers {
        let mlp = format!("model.layers.{i}.mlp");
        sanitize_experts(
            &mut tensors,
            &mlp,
            experts,
            ["gate_proj", "up_proj", "down_proj"],
        )?;
    }
    Ok(tensors)
}

/// Qwen3-MoE's own plan lines.
fn plan(a: &Qwen3MoeArgs, layers: &[MoeLayer]) -> Vec<PlanItem> {
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
        PlanItem::new("attention", attention),
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
