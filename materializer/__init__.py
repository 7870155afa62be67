"""materializer"""
