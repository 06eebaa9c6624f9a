//! Products and sums with a constant (a dropout mask, an attention mask's bias) whose backward
//! gives only the input a gradient.
//!
//! candle's backward pass of `x * c` also computes `c`'s gradient (`grad * x`, a full-size
//! product), and of `x + c` a zero tensor for `c` plus an add, whether or not `c` leads to a
//! trained weight; both stay in the gradient store until the step ends. For attention's masks
//! that is two to three tensors of `[batch × heads × length × length]` per layer.

use candle_core::backend::BackendStorage;
use candle_core::op::{Add, Mul};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

/// `x ⊙ c`, `c` broadcast to `x`'s shape; the gradient reaches `x` alone.
pub fn mul_constant(x: &Tensor, c: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op2(&c.broadcast_as(x.shape())?, WithConstant::Mul)
}

/// `x + c`, `c` broadcast to `x`'s shape; the gradient reaches `x` alone.
pub fn add_constant(x: &Tensor, c: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op2(&c.broadcast_as(x.shape())?, WithConstant::Add)
}

#[derive(Debug, Clone, Copy)]
enum WithConstant {
    Mul,
    Add,
}

impl WithConstant {
    /// The elementwise op on any backend's storage (the layouts carry the broadcast).
    fn run<S: BackendStorage>(
        self,
        x: &S,
        xl: &Layout,
        c: &S,
        cl: &Layout,
    ) -> candle_core::Result<(S, Shape)> {
        let out = match self {
            WithConstant::Mul => x.binary_impl::<Mul>(c, xl, cl)?,
            WithConstant::Add => x.binary_impl::<Add>(c, xl, cl)?,
        };
        Ok((out, xl.shape().clone()))
    }
}

impl CustomOp2 for WithConstant {
    fn name(&self) -> &'static str {
        match self {
            WithConstant::Mul => "hone-mul-constant",
            WithConstant::Add => "hone-add-constant",
        }
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        c: &CpuStorage,
        cl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(x, xl, c, cl)
    }

    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        c: &candle_core::CudaStorage,
        cl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        self.run(x, xl, c, cl)
    }

    fn metal_fwd(
        &self,
        x: &candle_core::MetalStorage,
        xl: &Layout,
        c: &candle_core::MetalStorage,
        cl: &Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, Shape)> {
        self.run(x, xl, c, cl)
    }

    fn bwd(
        &self,
        _x: &Tensor,
        c: &Tensor,
        _result: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = match self {
            WithConstant::Mul => grad.mul(c)?,
            WithConstant::Add => grad.clone(),
        };
        Ok((Some(dx), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The values and `x`'s gradient equal candle's broadcast ops', and the constant gets no
    /// gradient at all.
    #[test]
    fn the_input_gets_candles_gradient_and_the_constant_none() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_vec(
            (0..24).map(|v| v as f32 * 0.1 - 1.0).collect::<Vec<_>>(),
            (2, 3, 4),
            &dev,
        )?;
        let c = Tensor::new(&[[0f32, 2.0, 0.5, -1.0]], &dev)?; // broadcast over (2, 3)
        let w = Tensor::from_vec(
            (0..24).map(|v| (v % 5) as f32 - 2.0).collect::<Vec<_>>(),
            (2, 3, 4),
            &dev,
        )?;
        for (ours, theirs) in [
            (
                mul_constant(x.as_tensor(), &c)?,
                x.as_tensor().broadcast_mul(&c)?,
            ),
            (
                add_constant(x.as_tensor(), &c)?,
                x.as_tensor().broadcast_add(&c)?,
            ),
        ] {
            assert_eq!(ours.to_vec3::<f32>()?, theirs.to_vec3::<f32>()?);
            let g_ours = (ours * &w)?.sum_all()?.backward()?;
            let g_theirs = (theirs * &w)?.sum_all()?.backward()?;
            assert_eq!(
                g_ours.get(&x).expect("x's gradient").to_vec3::<f32>()?,
                g_theirs.get(&x).expect("x's gradient").to_vec3::<f32>()?
            );
            assert!(g_ours.get(&c).is_none(), "the constant got a gradient");
        }
        Ok(())
    }
}
