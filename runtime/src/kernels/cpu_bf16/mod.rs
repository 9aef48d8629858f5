//! The CPU engine in bf16: convolutions ([`conv`]) and fully connected layers ([`linear`]) whose
//! activations and gradients are bf16 and whose products are summed in f32, on a matrix product
//! ([`gemm`]) that uses AVX512_BF16 where the CPU has it. What a bf16 plan (`--precision bf16`)
//! runs on Flex; the backend glue (`kernels/flex.rs`) hands it bf16 tensors' bits.

pub mod conv;
pub mod convert;
pub mod gemm;
pub mod linear;
mod pack;
#[cfg(test)]
mod tests;

pub use conv::Weight;
