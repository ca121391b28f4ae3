use forge_core::mlx_rs::{ops, Array};
#[test]
fn smoke() {
    let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    let b = ops::matmul(&a, &a).unwrap();
    b.eval().unwrap();
    assert_eq!(b.as_slice::<f32>(), &[7.0, 10.0, 15.0, 22.0]);
}
