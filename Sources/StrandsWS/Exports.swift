// StrandsWS speaks in StrandsLoop's types (Loop, LoopGroup, SocketAddress, UVError): one import brings both.
@_exported import StrandsLoop
