"""Layer 2, trainable networks (MLP, UNet), adapters for outside models and their Lipschitz bounds.
Imports only ``vsmlab.core``."""
