// @overlay/store: the endpoint store interface and its implementations (issue 16).
export {};
