"""The master and worker images: cloud-init user-data, the boot helpers, policy autosign."""
