"""The workbench: what researchers and operators drive the Data Carousel with, on top of everything else.

The `datacarousel` command (`cli`, `commands`), the demo (`demo`), the embedded environment that plays AWS
and HSDS on one machine (`local`), the synthetic BasicFusion archive (`synthetic`), image build and push
(`images`), registering a research group's analysis with a running stack (`registration`) and the
README's generated tables (`definitions_table`). Nothing below imports it (import-linter's layers
contract in pyproject.toml; ARCHITECTURE.md).
"""
