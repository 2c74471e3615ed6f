//! The Kubernetes REST API over the store: discovery, OpenAPI, CRUD, watch, patch and subresources behind authentication, authorization and admission (filled in by the apiserver issue).
