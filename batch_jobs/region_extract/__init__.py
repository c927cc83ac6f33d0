"""RegionExtract: every sample of an orbit that falls in a lat/lon box, as one CF-1.8 NetCDF file per orbit.

Modules: `layout` (what the BasicFusion layout spec fixes: band tables, fill values, valid ranges),
`science` (the box and its exact semantics, the selection and its parameters, `extract`),
`instruments` and `misr` (each instrument's samples; the validity and time rules are in the
docstring of `instruments`), `netcdf` (the per-orbit file: one group per instrument), `reduce`
(one time-series file per instrument over all orbits). `definition.toml` describes the job.
"""
