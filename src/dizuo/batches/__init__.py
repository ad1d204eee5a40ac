"""The Files and Batch APIs: an organization's files, and batches of requests run as compute jobs
whose workers send each line through the gateway (see ``service``)."""
