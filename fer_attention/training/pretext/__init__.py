"""Self-supervised pretexts built on the LBP maps the network already computes (``fer-pretrain``).

Two pretexts, combinable by weight (``conf/pretext/``):

- **LBP histograms** (``histogram_weight``): from an augmented view of a face (shifted, scaled, rotated,
  re-lit, blurred or noised, partly occluded), predict the LBP-code histogram of every cell of a
  ``grid x grid`` layout of the *clean* face. A small 1x1-conv head on the features the classifier would
  pool (after attention and reconstruction) outputs one distribution per cell; the loss is the KL
  divergence from the target histogram, averaged over cells. The network has to undo the augmentation
  and know where the brows, eyes, nose and mouth are and which texture each has: what the expression
  classifier needs too. Every module before the classifier learns (streams, fusion, attention,
  reconstruction).
- **Image-LBP contrast** (``contrastive_weight``): two augmented views of each face; the image stream's
  pooled features of one view and the LBP stream's pooled features of the other are projected and
  aligned with InfoNCE (the other faces of the batch are the negatives), in both directions. Trains the
  two streams to agree across modalities and augmentations.

The result is ``<run dir>/pretext.ckpt``: the network's tensors under the same names as in a
:class:`~fer_attention.models.FERAttentionNet` (``net.*``; the classifier, which the pretext never
trains, is left out), loadable by ``fer-train model.init_from=<run dir>/pretext.ckpt``.

Modules: :mod:`.data` (the augmented views, the faces it trains and watches on), :mod:`.losses` (LBP
histograms, their KL divergence, InfoNCE), :mod:`.module` (the LightningModule and its export),
:mod:`.task` (the config check and ``pretrain``).
"""
