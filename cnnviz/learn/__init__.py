"""The Learn pages' maths (neuron, convolution, pooling, kernels). Never imports TensorFlow: a test checks the whole folder."""
