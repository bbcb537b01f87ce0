"""The civil judgment enforcement data-exchange gateway."""

import warnings

# pyHanko imports cryptography's DSA types, which cryptography deprecates. No signature here is DSA, and the
# warning on the stderr of every process that checks or makes a signature would only alarm its operators.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"pyhanko\.")
