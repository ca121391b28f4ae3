//! Links every architecture plugin so its `inventory::submit!` registers.
//! `cargo xtask add-arch` appends new plugins here.

extern crate forge_clip;
extern crate forge_deepseek_v3;
extern crate forge_gpt_oss;
extern crate forge_llama;
extern crate forge_llava;
extern crate forge_qwen2_vl;
extern crate forge_siglip;
