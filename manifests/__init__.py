"""Data package: the manifests a cluster applies (CRDs and one folder per component),
shipped inside the isthmus wheel so `isthmus install` can render them."""
