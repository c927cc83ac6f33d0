"""record_metadata: walk the HSDS folders and record each indexed file's metadata in BasicFusionFiles."""
