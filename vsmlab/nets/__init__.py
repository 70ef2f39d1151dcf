"""Layer 2, trainable networks (MLP, UNet), adapters for outside models and their Lipschitz bounds.
Imports only ``vsmlab.core``."""

from vsmlab.nets.adapters import EpsAdapter
from vsmlab.nets.mlp import MLP
from vsmlab.nets.unet import UNet, count_parameters, unet_flops

__all__ = ["MLP", "UNet", "EpsAdapter", "count_parameters", "unet_flops"]
