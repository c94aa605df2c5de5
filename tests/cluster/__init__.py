"""Tests against a real Kubernetes control plane; a package so its helpers import relatively."""
