"""Network definitions of the learned backends (plain torch: no torchvision, nothing downloaded)."""
