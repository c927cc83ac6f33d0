"""One writer module per instrument group of a synthetic BasicFusion orbit file.

`modis`, `misr`, `ceres`, `aster` and `mopitt` each write their top-level group
(docs/basicfusion-layout.md sections 2-5) through `write(orbit_file, ...)`; `common`
holds what they share: the `OrbitFile` being written (file, chunk writer, preset,
geometry, scene, random streams, the InputGranules list) and the fill and unit
conventions. `workbench/synthetic/generator.py` opens the file, builds the
`OrbitFile`, calls the instruments in the order the C program writes them and
adds the root attributes and dimension scales.
"""
