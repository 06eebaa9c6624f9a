//! Row gathers between the packed tokens and the padded attention layout whose backward is a
//! gather too. candle's `index_select` backward is `index_add`, whose CUDA kernel gives one
//! thread to each feature and walks every index in turn (768 threads over 4,096 tokens for
//! BERT-base at 32 × 128); these two maps are inverse to each other on the real tokens, so
//! each one's backward is the other's forward.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, MetalStorage, Shape, Tensor};

/// `x[index]` over the rows (dimension 0) whose gradient is `grad[inverse]`, times `keep` (a
/// `[rows of x × 1]` column of 0 or 1) when given.
///
/// Exact when every row of `x` that `keep` keeps is read by exactly one result row, `inverse`
/// names that row, and the gradient of every other result row is zero: the padding slots of
/// attention (masked as keys, dropped as queries) get none.
#[derive(Debug, Clone)]
pub struct InvertibleRows {
    inverse: Tensor,
    keep: Option<Tensor>,
}

impl InvertibleRows {
    /// The gather whose backward reads through `inverse` (masked by `keep`).
    pub fn new(inverse: Tensor, keep: Option<Tensor>) -> Self {
        InvertibleRows { inverse, keep }
    }

    /// `x[index]` over the rows.
    pub fn apply(&self, x: &Tensor, index: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op2(index, self.clone())
    }
}

/// The result's shape: the index's length, then `x`'s other dimensions.
fn gathered_shape(x: &Layout, index: &Layout) -> Shape {
    let mut dims = x.dims().to_vec();
    dims[0] = index.shape().elem_count();
    Shape::from(dims)
}

impl CustomOp2 for InvertibleRows {
    fn name(&self) -> &'static str {
        "invertible-rows"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        index: &CpuStorage,
        il: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((x.index_select(index, xl, il, 0)?, gathered_shape(xl, il)))
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        index: &CudaStorage,
        il: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        Ok((x.index_select(index, xl, il, 0)?, gathered_shape(xl, il)))
    }

    fn metal_fwd(
        &self,
        x: &MetalStorage,
        xl: &Layout,
        index: &MetalStorage,
        il: &Layout,
    ) -> candle_core::Result<(MetalStorage, Shape)> {
        Ok((x.index_select(index, xl, il, 0)?, gathered_shape(xl, il)))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _index: &Tensor,
        _result: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let back = grad.index_select(&self.inverse, 0)?;
        let back = match &self.keep {
            // In the gradient's dtype (mixed precision gathers low-precision values).
            Some(keep) => back.broadcast_mul(&keep.to_dtype(back.dtype())?)?,
            None => back,
        };
        Ok((Some(back), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Two sequences of 3 and 1 tokens padded to 3 slots: the gather to the padded layout and
    /// back, their gradients against `index_select`'s where the padding slots get none.
    #[test]
    fn the_gradients_equal_index_selects_where_padding_gets_none() {
        let dev = Device::Cpu;
        let x = Var::from_vec((0..8).map(|v| v as f32).collect::<Vec<_>>(), (4, 2), &dev).unwrap();
        let pad = Tensor::new(&[0u32, 1, 2, 3, 0, 0], &dev).unwrap();
        let unpad = Tensor::new(&[0u32, 1, 2, 3], &dev).unwrap();
        let real = Tensor::new(&[[1f32], [1.], [1.], [1.], [0.], [0.]], &dev).unwrap();
        // A weight per padded slot, zero on the padding slots (as attention leaves them).
        let w = Tensor::new(
            &[[1f32, 2.], [3., 4.], [5., 6.], [7., 8.], [0., 0.], [0., 0.]],
            &dev,
        )
        .unwrap();
        let padded = InvertibleRows::new(unpad.clone(), None)
            .apply(x.as_tensor(), &pad)
            .unwrap();
        let want = x.as_tensor().index_select(&pad, 0).unwrap();
        assert_eq!(
            padded.to_vec2::<f32>().unwrap(),
            want.to_vec2::<f32>().unwrap()
        );
        let loss = (padded * &w).unwrap().sum_all().unwrap();
        let got = loss
            .backward()
            .unwrap()
            .get(&x)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let loss = (want * &w).unwrap().sum_all().unwrap();
        let reference = loss
            .backward()
            .unwrap()
            .get(&x)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(got, reference);

        // Back from the padded layout: the padding slots' rows get no gradient.
        let c = Var::from_vec((0..12).map(|v| v as f32).collect::<Vec<_>>(), (6, 2), &dev).unwrap();
        let tokens = InvertibleRows::new(pad.clone(), Some(real))
            .apply(c.as_tensor(), &unpad)
            .unwrap();
        let w = Tensor::new(&[[1f32, -1.], [2., 0.5], [3., 3.], [-4., 1.]], &dev).unwrap();
        let got = (tokens * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let reference = (c.as_tensor().index_select(&unpad, 0).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(
            got.get(&c).unwrap().to_vec2::<f32>().unwrap(),
            reference
                .get(&c)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        );
    }
}
