// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title OrderBook: private order book entries for keymesh's Ethereum example.
/// @notice The id and the maker are public. The price and the counterparty are
/// keymesh envelopes: `price` holds an envelope's binary form (bytes),
/// `counterparty` its text form ("km1:..."). Their AAD binds chain id,
/// contract address and field name, so they decrypt only here, and only for
/// the parties a keymesh grant names. Off-chain records are committed by
/// digest (SHA-256 of the record's canonical encoding).
contract OrderBook {
    struct Entry {
        address maker;
        bytes price;
        string counterparty;
    }

    mapping(uint256 => Entry) private entries;

    /// @notice The committed digest of each off-chain record, by id.
    mapping(uint256 => bytes32) public recordDigest;

    event OrderPlaced(uint256 indexed id, address indexed maker, bytes price, string counterparty);
    event RecordCommitted(uint256 indexed id, bytes32 digest);

    /// @notice Places order `id` with an encrypted price and counterparty.
    function place(uint256 id, bytes calldata price, string calldata counterparty) external {
        require(entries[id].maker == address(0), "order exists");
        entries[id] = Entry(msg.sender, price, counterparty);
        emit OrderPlaced(id, msg.sender, price, counterparty);
    }

    /// @notice Returns order `id`; the price and counterparty are envelopes.
    function entry(uint256 id) external view returns (address maker, bytes memory price, string memory counterparty) {
        Entry storage e = entries[id];
        return (e.maker, e.price, e.counterparty);
    }

    /// @notice Commits the digest of off-chain record `id`, once.
    function commitRecord(uint256 id, bytes32 digest) external {
        require(recordDigest[id] == bytes32(0), "record exists");
        recordDigest[id] = digest;
        emit RecordCommitted(id, digest);
    }
}
