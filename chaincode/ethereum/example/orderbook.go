// Code generated via abigen V2 - DO NOT EDIT.
// This file is a generated binding and any manual changes will be lost.

package example

import (
	"bytes"
	"errors"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Reference imports to suppress errors if they are not otherwise used.
var (
	_ = bytes.Equal
	_ = errors.New
	_ = big.NewInt
	_ = common.Big1
	_ = types.BloomLookup
	_ = abi.ConvertType
)

// OrderBookMetaData contains all meta data concerning the OrderBook contract.
var OrderBookMetaData = bind.MetaData{
	ABI: "[{\"anonymous\":false,\"inputs\":[{\"indexed\":true,\"internalType\":\"uint256\",\"name\":\"id\",\"type\":\"uint256\"},{\"indexed\":true,\"internalType\":\"address\",\"name\":\"maker\",\"type\":\"address\"},{\"indexed\":false,\"internalType\":\"bytes\",\"name\":\"price\",\"type\":\"bytes\"},{\"indexed\":false,\"internalType\":\"string\",\"name\":\"counterparty\",\"type\":\"string\"}],\"name\":\"OrderPlaced\",\"type\":\"event\"},{\"anonymous\":false,\"inputs\":[{\"indexed\":true,\"internalType\":\"uint256\",\"name\":\"id\",\"type\":\"uint256\"},{\"indexed\":false,\"internalType\":\"bytes32\",\"name\":\"digest\",\"type\":\"bytes32\"}],\"name\":\"RecordCommitted\",\"type\":\"event\"},{\"inputs\":[{\"internalType\":\"uint256\",\"name\":\"id\",\"type\":\"uint256\"},{\"internalType\":\"bytes32\",\"name\":\"digest\",\"type\":\"bytes32\"}],\"name\":\"commitRecord\",\"outputs\":[],\"stateMutability\":\"nonpayable\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"uint256\",\"name\":\"id\",\"type\":\"uint256\"}],\"name\":\"entry\",\"outputs\":[{\"internalType\":\"address\",\"name\":\"maker\",\"type\":\"address\"},{\"internalType\":\"bytes\",\"name\":\"price\",\"type\":\"bytes\"},{\"internalType\":\"string\",\"name\":\"counterparty\",\"type\":\"string\"}],\"stateMutability\":\"view\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"uint256\",\"name\":\"id\",\"type\":\"uint256\"},{\"internalType\":\"bytes\",\"name\":\"price\",\"type\":\"bytes\"},{\"internalType\":\"string\",\"name\":\"counterparty\",\"type\":\"string\"}],\"name\":\"place\",\"outputs\":[],\"stateMutability\":\"nonpayable\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"uint256\",\"name\":\"\",\"type\":\"uint256\"}],\"name\":\"recordDigest\",\"outputs\":[{\"internalType\":\"bytes32\",\"name\":\"\",\"type\":\"bytes32\"}],\"stateMutability\":\"view\",\"type\":\"function\"}]",
	ID:  "OrderBook",
	Bin: "0x6080604052348015600e575f5ffd5b506107678061001c5f395ff3fe608060405234801561000f575f5ffd5b506004361061004a575f3560e01c80631a4e595f1461004e5780632cd1547b146100805780639c8acbe614610095578063e2095c07146100a8575b5f5ffd5b61006d61005c36600461043d565b60016020525f908152604090205481565b6040519081526020015b60405180910390f35b61009361008e366004610454565b6100ca565b005b6100936100a33660046104b9565b61016a565b6100bb6100b636600461043d565b6102ef565b60405161007793929190610560565b5f828152600160205260409020541561011a5760405162461bcd60e51b815260206004820152600d60248201526c7265636f72642065786973747360981b60448201526064015b60405180910390fd5b5f82815260016020526040908190208290555182907f68fbd64bc0e1ddf53c4e3ce600f27508fdf4ca8d5f6149b17c272488224fd2129061015e9084815260200190565b60405180910390a25050565b5f858152602081905260409020546001600160a01b0316156101bd5760405162461bcd60e51b815260206004820152600c60248201526b6f726465722065786973747360a01b6044820152606401610111565b6040518060600160405280336001600160a01b0316815260200185858080601f0160208091040260200160405190810160405280939291908181526020018383808284375f92019190915250505090825250604080516020601f8601819004810282018101909252848152918101919085908590819084018382808284375f92018290525093909452505087815260208181526040909120835181546001600160a01b0319166001600160a01b039091161781559083015190915060018201906102879082610642565b506040820151600282019061029c9082610642565b50905050336001600160a01b0316857f216e8dca1845f2ca733cac6999d512410ae2b28465c9be909c4188e532f7b1bb868686866040516102e09493929190610729565b60405180910390a35050505050565b5f8181526020819052604081208054600182018054606093849390926001600160a01b039091169160028401908290610327906105b3565b80601f0160208091040260200160405190810160405280929190818152602001828054610353906105b3565b801561039e5780601f106103755761010080835404028352916020019161039e565b820191905f5260205f20905b81548152906001019060200180831161038157829003601f168201915b505050505091508080546103b1906105b3565b80601f01602080910402602001604051908101604052809291908181526020018280546103dd906105b3565b80156104285780601f106103ff57610100808354040283529160200191610428565b820191905f5260205f20905b81548152906001019060200180831161040b57829003601f168201915b50505050509050935093509350509193909250565b5f6020828403121561044d575f5ffd5b5035919050565b5f5f60408385031215610465575f5ffd5b50508035926020909101359150565b5f5f83601f840112610484575f5ffd5b50813567ffffffffffffffff81111561049b575f5ffd5b6020830191508360208285010111156104b2575f5ffd5b9250929050565b5f5f5f5f5f606086880312156104cd575f5ffd5b85359450602086013567ffffffffffffffff8111156104ea575f5ffd5b6104f688828901610474565b909550935050604086013567ffffffffffffffff811115610515575f5ffd5b61052188828901610474565b969995985093965092949392505050565b5f81518084528060208401602086015e5f602082860101526020601f19601f83011685010191505092915050565b6001600160a01b03841681526060602082018190525f9061058390830185610532565b82810360408401526105958185610532565b9695505050505050565b634e487b7160e01b5f52604160045260245ffd5b600181811c908216806105c757607f821691505b6020821081036105e557634e487b7160e01b5f52602260045260245ffd5b50919050565b601f82111561063d578282111561063d57805f5260205f20601f840160051c602085101561061657505f5b90810190601f840160051c035f5b81811015610639575f83820155600101610624565b5050505b505050565b815167ffffffffffffffff81111561065c5761065c61059f565b6106708161066a84546105b3565b846105eb565b6020601f8211600181146106a2575f831561068b5750848201515b5f19600385901b1c1916600184901b1784556106fa565b5f84815260208120601f198516915b828110156106d157878501518255602094850194600190920191016106b1565b50848210156106ee57868401515f19600387901b60f8161c191681555b505060018360011b0184555b5050505050565b81835281816020850137505f828201602090810191909152601f909101601f19169091010190565b604081525f61073c604083018688610701565b828103602084015261074f818587610701565b97965050505050505056fea164736f6c6343000825000a",
}

// OrderBook is an auto generated Go binding around an Ethereum contract.
type OrderBook struct {
	abi abi.ABI
}

// GetABI returns the ABI associated with this contract binding.
func (c *OrderBook) GetABI() abi.ABI {
	return c.abi
}

// NewOrderBook creates a new instance of OrderBook.
func NewOrderBook() *OrderBook {
	parsed, err := OrderBookMetaData.ParseABI()
	if err != nil {
		panic(errors.New("invalid ABI: " + err.Error()))
	}
	return &OrderBook{abi: *parsed}
}

// Instance creates a wrapper for a deployed contract instance at the given address.
// Use this to create the instance object passed to abigen v2 library functions Call, Transact, etc.
func (c *OrderBook) Instance(backend bind.ContractBackend, addr common.Address) *bind.BoundContract {
	return bind.NewBoundContract(addr, c.abi, backend, backend, backend)
}

// PackCommitRecord is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x2cd1547b.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function commitRecord(uint256 id, bytes32 digest) returns()
func (orderBook *OrderBook) PackCommitRecord(id *big.Int, digest [32]byte) []byte {
	enc, err := orderBook.abi.Pack("commitRecord", id, digest)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackCommitRecord is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x2cd1547b.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function commitRecord(uint256 id, bytes32 digest) returns()
func (orderBook *OrderBook) TryPackCommitRecord(id *big.Int, digest [32]byte) ([]byte, error) {
	return orderBook.abi.Pack("commitRecord", id, digest)
}

// PackEntry is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xe2095c07.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function entry(uint256 id) view returns(address maker, bytes price, string counterparty)
func (orderBook *OrderBook) PackEntry(id *big.Int) []byte {
	enc, err := orderBook.abi.Pack("entry", id)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackEntry is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xe2095c07.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function entry(uint256 id) view returns(address maker, bytes price, string counterparty)
func (orderBook *OrderBook) TryPackEntry(id *big.Int) ([]byte, error) {
	return orderBook.abi.Pack("entry", id)
}

// EntryOutput serves as a container for the return parameters of contract
// method Entry.
type EntryOutput struct {
	Maker        common.Address
	Price        []byte
	Counterparty string
}

// UnpackEntry is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0xe2095c07.
//
// Solidity: function entry(uint256 id) view returns(address maker, bytes price, string counterparty)
func (orderBook *OrderBook) UnpackEntry(data []byte) (EntryOutput, error) {
	out, err := orderBook.abi.Unpack("entry", data)
	outstruct := new(EntryOutput)
	if err != nil {
		return *outstruct, err
	}
	outstruct.Maker = *abi.ConvertType(out[0], new(common.Address)).(*common.Address)
	outstruct.Price = *abi.ConvertType(out[1], new([]byte)).(*[]byte)
	outstruct.Counterparty = *abi.ConvertType(out[2], new(string)).(*string)
	return *outstruct, nil
}

// PackPlace is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x9c8acbe6.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function place(uint256 id, bytes price, string counterparty) returns()
func (orderBook *OrderBook) PackPlace(id *big.Int, price []byte, counterparty string) []byte {
	enc, err := orderBook.abi.Pack("place", id, price, counterparty)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackPlace is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x9c8acbe6.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function place(uint256 id, bytes price, string counterparty) returns()
func (orderBook *OrderBook) TryPackPlace(id *big.Int, price []byte, counterparty string) ([]byte, error) {
	return orderBook.abi.Pack("place", id, price, counterparty)
}

// PackRecordDigest is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x1a4e595f.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function recordDigest(uint256 ) view returns(bytes32)
func (orderBook *OrderBook) PackRecordDigest(arg0 *big.Int) []byte {
	enc, err := orderBook.abi.Pack("recordDigest", arg0)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackRecordDigest is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x1a4e595f.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function recordDigest(uint256 ) view returns(bytes32)
func (orderBook *OrderBook) TryPackRecordDigest(arg0 *big.Int) ([]byte, error) {
	return orderBook.abi.Pack("recordDigest", arg0)
}

// UnpackRecordDigest is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0x1a4e595f.
//
// Solidity: function recordDigest(uint256 ) view returns(bytes32)
func (orderBook *OrderBook) UnpackRecordDigest(data []byte) ([32]byte, error) {
	out, err := orderBook.abi.Unpack("recordDigest", data)
	if err != nil {
		return *new([32]byte), err
	}
	out0 := *abi.ConvertType(out[0], new([32]byte)).(*[32]byte)
	return out0, nil
}

// OrderBookOrderPlaced represents a OrderPlaced event raised by the OrderBook contract.
type OrderBookOrderPlaced struct {
	Id           *big.Int
	Maker        common.Address
	Price        []byte
	Counterparty string
	Raw          *types.Log // Blockchain specific contextual infos
}

const OrderBookOrderPlacedEventName = "OrderPlaced"

// ContractEventName returns the user-defined event name.
func (OrderBookOrderPlaced) ContractEventName() string {
	return OrderBookOrderPlacedEventName
}

// UnpackOrderPlacedEvent is the Go binding that unpacks the event data emitted
// by contract.
//
// Solidity: event OrderPlaced(uint256 indexed id, address indexed maker, bytes price, string counterparty)
func (orderBook *OrderBook) UnpackOrderPlacedEvent(log *types.Log) (*OrderBookOrderPlaced, error) {
	event := "OrderPlaced"
	if len(log.Topics) == 0 {
		return nil, bind.ErrNoEventSignature
	}
	if log.Topics[0] != orderBook.abi.Events[event].ID {
		return nil, bind.ErrEventSignatureMismatch
	}
	out := new(OrderBookOrderPlaced)
	if len(log.Data) > 0 {
		if err := orderBook.abi.UnpackIntoInterface(out, event, log.Data); err != nil {
			return nil, err
		}
	}
	var indexed abi.Arguments
	for _, arg := range orderBook.abi.Events[event].Inputs {
		if arg.Indexed {
			indexed = append(indexed, arg)
		}
	}
	if err := abi.ParseTopics(out, indexed, log.Topics[1:]); err != nil {
		return nil, err
	}
	out.Raw = log
	return out, nil
}

// OrderBookRecordCommitted represents a RecordCommitted event raised by the OrderBook contract.
type OrderBookRecordCommitted struct {
	Id     *big.Int
	Digest [32]byte
	Raw    *types.Log // Blockchain specific contextual infos
}

const OrderBookRecordCommittedEventName = "RecordCommitted"

// ContractEventName returns the user-defined event name.
func (OrderBookRecordCommitted) ContractEventName() string {
	return OrderBookRecordCommittedEventName
}

// UnpackRecordCommittedEvent is the Go binding that unpacks the event data emitted
// by contract.
//
// Solidity: event RecordCommitted(uint256 indexed id, bytes32 digest)
func (orderBook *OrderBook) UnpackRecordCommittedEvent(log *types.Log) (*OrderBookRecordCommitted, error) {
	event := "RecordCommitted"
	if len(log.Topics) == 0 {
		return nil, bind.ErrNoEventSignature
	}
	if log.Topics[0] != orderBook.abi.Events[event].ID {
		return nil, bind.ErrEventSignatureMismatch
	}
	out := new(OrderBookRecordCommitted)
	if len(log.Data) > 0 {
		if err := orderBook.abi.UnpackIntoInterface(out, event, log.Data); err != nil {
			return nil, err
		}
	}
	var indexed abi.Arguments
	for _, arg := range orderBook.abi.Events[event].Inputs {
		if arg.Indexed {
			indexed = append(indexed, arg)
		}
	}
	if err := abi.ParseTopics(out, indexed, log.Topics[1:]); err != nil {
		return nil, err
	}
	out.Raw = log
	return out, nil
}
