"""Generated gRPC code for the kubelet device plugin API v1beta1 and PodResources v1.

Do not edit: the *_pb2* modules come from protos/ through `make protos`.
"""
