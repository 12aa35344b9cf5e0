"""Training objectives as pure functions of tensors, registered by name."""
