"""The model diagram and table, from traced calls to what is drawn (pure; no torch).

In the order data flows: :mod:`.labels` (box and title text), :mod:`.fold` (runs, patterns, parallel
siblings), :mod:`.view` (the call tree cut at a depth, edges routed onto the boxes), :mod:`.merge`
(parameter-free layers into the box they follow), :mod:`.ushape` (an encoder–decoder drawn as a U),
:mod:`.size` (the rendered size, estimated to choose the default depth); :mod:`.table` is the README
and docs table. :mod:`traindoc.render.diagrams` renders the view through ``model.mmd.j2``.
"""
