"""The ten-class depth study's defaults: the nets (one variance setting per run, at the ReLU
FFNet's edge of chaos by default), the depths of the kernels and of the trained networks."""
__all__ = ["KERNEL_DEPTHS", "FFNET_EXTRA_DEPTHS", "DEFAULTS", "SMALL", "kernel_depths"]

KERNEL_DEPTHS = (1, 3, 10, 30, 100, 300, 1000)
# The FFNet's kernels to every depth come from one recursion: deeper ones cost one pass more.
FFNET_EXTRA_DEPTHS = (3000, 10000)
DEFAULTS = dict(archs="ffnet,resnet:0.5,resnet:0.75,resnet:1", activation="relu", w_var=2.0, b_var=0.0,
                n_train=1000, kernels="nngp,ntk", net_archs="ffnet,resnet:0.5", net_depths="1,3,10", width=1024,
                net_n_train=100, seeds=1, steps="0,10,30,100,200", lr_factor=1.0)
SMALL = dict(n_train=50, n_test=100, depths="1,3", ffnet_depths="1,3,30", net_depths="1,3", width=64,
             net_n_train=20, steps="0,5,20")


def kernel_depths(arch: str, depths=KERNEL_DEPTHS, ffnet_depths=KERNEL_DEPTHS + FFNET_EXTRA_DEPTHS) -> tuple:
    """The depths the kernels of `arch` are computed at: `ffnet_depths` for the FFNet, else `depths`."""
    return tuple(ffnet_depths if arch == "ffnet" else depths)
