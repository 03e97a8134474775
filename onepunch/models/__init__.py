"""Models: small nn.Modules, tensors in and tensors out; no devices, optimizers or file IO."""
